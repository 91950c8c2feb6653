"""The live viewer: POST /v1/computers/{id}/live makes a signed, short-lived link; the link's
page (our own HTML, script and style; no CDN, no inline code) shows the session's screencast
and, when interactive, sends clicks, scrolls and keys as ordinary actions (queued and billed
like any other). The token in the path is the only credential (sessions/live_viewer.py)."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import request_account
from project.exceptions import InvalidInput
from project.fields import iso
from project.openapi import error_response, errors
from sessions import selectors
from sessions.action_queue import action_submit
from sessions.action_specs import normalize_action
from sessions.api.action_views import _NeverNotAcceptable
from sessions.api.schema import ACTIONS, COMPUTERS, SESSION_ID, ServerSentEvent
from sessions.api.stream_views import _event_stream_response, screencast_backend_check
from sessions.live_viewer import VIEWER_ACTIONS, live_viewer_resolve, live_viewer_token_create
from sessions.live_viewer_assets import VIEWER_CSS, VIEWER_JS
from sessions.screencast import screencast_watch
from sessions.streams import session_screencast_stream, stream_slot_take

# The page loads only what this origin serves; frames are data: URLs.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)
TOKEN = OpenApiParameter(
    "token", OpenApiTypes.STR, OpenApiParameter.PATH, description="The viewer link's token."
)


class LiveViewInput(serializers.Serializer[Any]):
    interactive = serializers.BooleanField(
        required=False, default=False, help_text="Let the viewer click, scroll and type (as billed actions)."
    )


class LiveViewOutput(serializers.Serializer[Any]):
    url = serializers.CharField(help_text="The viewer page; it needs no API key.")
    expires_at = serializers.CharField(
        help_text="When the link stops working (it also stops when the session ends)."
    )
    interactive = serializers.BooleanField()


class ViewerInput(serializers.Serializer[Any]):
    action = serializers.DictField(help_text=f"One of {', '.join(VIEWER_ACTIONS)}, as for /execute.")


class ViewerInputOutput(serializers.Serializer[Any]):
    action_id = serializers.CharField()
    status = serializers.CharField()


class ComputerLiveView(APIView):
    @extend_schema(
        tags=[COMPUTERS],
        summary="A signed, short-lived link to a live viewer of the session",
        parameters=[SESSION_ID],
        request=LiveViewInput,
        responses={201: LiveViewOutput, **errors(404, 409, 410)},
    )
    def post(self, request: Request, session_id: str) -> Response:
        serializer = LiveViewInput(data=request.data if isinstance(request.data, dict) else {})
        serializer.is_valid(raise_exception=True)
        interactive = bool(serializer.validated_data["interactive"])
        session = selectors.session_get(account=request_account(request), session_id=session_id)
        token, expires_at = live_viewer_token_create(session=session, interactive=interactive)
        url = request.build_absolute_uri(reverse("v1:live-viewer", args=[token]))
        body = {"url": url, "expires_at": iso(expires_at), "interactive": interactive}
        return Response(LiveViewOutput(body).data, status=status.HTTP_201_CREATED)


class _ViewerView(APIView):
    """The token is the credential: no API key, no rate limit of an account."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes: list[Any] = []
    content_negotiation_class = _NeverNotAcceptable


def _viewer_errors() -> dict[int, OpenApiResponse]:
    return {
        404: error_response(404, "Unknown or expired link."),
        409: error_response(409),
        410: error_response(410),
    }


class LiveViewerPageView(_ViewerView):
    @extend_schema(
        tags=[ACTIONS],
        summary="The live viewer page (the link from POST /v1/computers/{id}/live)",
        auth=[],
        parameters=[TOKEN],
        responses={(200, "text/html"): OpenApiResponse(OpenApiTypes.STR), **_viewer_errors()},
    )
    def get(self, request: Request, token: str) -> HttpResponse:
        viewer = live_viewer_resolve(token)
        response = render(
            request._request,
            "sessions/live_viewer.html",
            {
                "session_id": viewer.session.pk,
                "interactive": viewer.interactive,
                "expires_at": iso(viewer.expires_at),
                "feed_url": reverse("v1:live-viewer-feed", args=[token]),
                "input_url": reverse("v1:live-viewer-input", args=[token]),
                "js_url": reverse("v1:live-viewer-js", args=[token]),
                "css_url": reverse("v1:live-viewer-css", args=[token]),
            },
        )
        response["Content-Security-Policy"] = _CSP
        response["Cache-Control"] = "no-store"
        response["Referrer-Policy"] = "no-referrer"
        # The admin's session page frames it; XFrameOptionsMiddleware would say DENY.
        response["X-Frame-Options"] = "SAMEORIGIN"
        return response


def _asset(body: str, content_type: str) -> HttpResponse:
    response = HttpResponse(body, content_type=content_type)
    response["Cache-Control"] = "private, max-age=300"
    return response


class LiveViewerScriptView(_ViewerView):
    @extend_schema(
        tags=[ACTIONS],
        summary="The live viewer's script",
        auth=[],
        parameters=[TOKEN],
        responses={(200, "text/javascript"): OpenApiResponse(OpenApiTypes.STR), **_viewer_errors()},
    )
    def get(self, request: Request, token: str) -> HttpResponse:
        live_viewer_resolve(token)
        return _asset(VIEWER_JS, "text/javascript; charset=utf-8")


class LiveViewerStyleView(_ViewerView):
    @extend_schema(
        tags=[ACTIONS],
        summary="The live viewer's style",
        auth=[],
        parameters=[TOKEN],
        responses={(200, "text/css"): OpenApiResponse(OpenApiTypes.STR), **_viewer_errors()},
    )
    def get(self, request: Request, token: str) -> HttpResponse:
        live_viewer_resolve(token)
        return _asset(VIEWER_CSS, "text/css; charset=utf-8")


class LiveViewerFeedView(_ViewerView):
    @extend_schema(
        tags=[ACTIONS],
        summary="The live viewer's screencast (as GET /computers/{id}/screencast)",
        auth=[],
        parameters=[TOKEN],
        responses={
            (200, "text/event-stream"): OpenApiResponse(ServerSentEvent, description="As the screencast's."),
            **_viewer_errors(),
            429: error_response(429),
            501: error_response(501),
        },
    )
    def get(self, request: Request, token: str) -> StreamingHttpResponse:
        request._request.get_host()  # ALLOWED_HOSTS: the stream handler runs no middleware
        viewer = live_viewer_resolve(token)
        session = viewer.session
        screencast_backend_check(session)
        slot = stream_slot_take(account_id=session.account_id)
        watcher = "viewer-" + slot
        screencast_watch(session_id=session.pk, host=session.host, token=watcher)
        return _event_stream_response(
            session_screencast_stream(
                session_id=session.pk,
                account_id=session.account_id,
                slot=slot,
                watcher=watcher,
                until=viewer.expires_at.timestamp(),
            )
        )


class LiveViewerInputView(_ViewerView):
    @extend_schema(
        tags=[ACTIONS],
        summary="An interactive viewer's click, scroll or key: queued and billed as an action",
        auth=[],
        parameters=[TOKEN],
        request=ViewerInput,
        responses={
            202: ViewerInputOutput,
            **_viewer_errors(),
            400: error_response(400),
            402: error_response(402),
        },
    )
    def post(self, request: Request, token: str) -> Response:
        viewer = live_viewer_resolve(token)
        if not viewer.interactive:
            raise InvalidInput("This live view is read-only.", code="live_view_read_only")
        serializer = ViewerInput(data=request.data if isinstance(request.data, dict) else {})
        serializer.is_valid(raise_exception=True)
        raw = dict(serializer.validated_data["action"])
        kind = raw.pop("type", None)
        if kind not in VIEWER_ACTIONS:
            raise InvalidInput(f"A viewer may send {', '.join(VIEWER_ACTIONS)}.", code="invalid_action")
        action = normalize_action(str(kind), raw)
        submitted = action_submit(session_id=viewer.session.pk, account=viewer.session.account, action=action)
        return Response(
            ViewerInputOutput({"action_id": submitted.public_id, "status": submitted.status}).data,
            status=status.HTTP_202_ACCEPTED,
        )
