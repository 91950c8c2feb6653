"""Recordings (create option `record`; sessions/recordings.py): GET /v1/computers/{id}/recording
says where one stands and, once `ready`, gives a signed, short-lived replay link; the replay
page (our own HTML, script and style; no CDN, no inline code) reads the index and the frames
through the same token. Another account's session is 404, as an unknown one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from django.http import HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import request_account
from project.exceptions import Conflict, InvalidInput, NotFound
from project.fields import iso
from project.openapi import error_response, errors
from sessions import selectors
from sessions.api.action_views import _NeverNotAcceptable
from sessions.api.log_views import _FormatIsOurs
from sessions.api.schema import ACTIONS, COMPUTERS, SESSION_ID
from sessions.models import Action, ExportStatus, RecordingStatus, SessionRecording
from sessions.recordings import (
    EXPORT_RETRY_AFTER_SECONDS,
    MP4_FILE,
    frame_at_or_after,
    recording_dir,
    recording_export_request,
    recording_frame_bytes,
    recording_frames,
    recording_frames_settled,
    recording_replay_resolve,
    recording_replay_token,
)
from sessions.replay_assets import REPLAY_CSS, REPLAY_JS

_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)
TOKEN = OpenApiParameter(
    "token", OpenApiTypes.STR, OpenApiParameter.PATH, description="The replay link's token."
)


class RecordingOutput(serializers.Serializer[Any]):
    session_id = serializers.CharField()
    status = serializers.ChoiceField(
        choices=list(RecordingStatus.values),
        help_text="recording (the session lives), processing (it ended; being indexed), ready, failed.",
    )
    failure_reason = serializers.CharField(allow_null=True)
    frames = serializers.IntegerField(help_text="Frames recorded (so far, while recording).")
    duration_ms = serializers.IntegerField(help_text="From the first frame to the session's end (ready).")
    size_bytes = serializers.IntegerField()
    truncated = serializers.BooleanField(help_text="The size or length cap stopped the recording early.")
    created_at = serializers.CharField()
    finished_at = serializers.CharField(allow_null=True)
    replay_url = serializers.CharField(
        allow_null=True, help_text="ready: a replay page; it needs no API key."
    )
    replay_expires_at = serializers.CharField(allow_null=True)
    truncated_reason = serializers.CharField(allow_null=True, help_text="Which cap stopped it (truncated).")
    mp4_status = serializers.CharField(
        allow_null=True,
        help_text="The MP4 export (?format=mp4): null (never asked for), processing, ready, failed.",
    )
    mp4_failure_reason = serializers.CharField(allow_null=True)
    mp4_size_bytes = serializers.IntegerField()


class RecordingExportOutput(serializers.Serializer[Any]):
    session_id = serializers.CharField()
    status = serializers.ChoiceField(choices=["processing"], help_text="Ask again after Retry-After.")
    detail = serializers.CharField()


FORMAT = OpenApiParameter(
    "format",
    OpenApiTypes.STR,
    enum=["json", "mp4"],
    description="mp4: the recording as a video, made in the background on the first request "
    "(202 processing with Retry-After until it is ready; then video/mp4).",
)
_EXPORT_RESPONSES: dict[Any, Any] = {
    (200, "video/mp4"): OpenApiResponse(OpenApiTypes.BINARY, description="format=mp4, once ready."),
    202: OpenApiResponse(RecordingExportOutput, description="format=mp4: being made; ask again."),
}


def _mp4_chunks(path: Path) -> AsyncIterator[bytes]:
    handle = open(path, "rb")  # noqa: SIM115 (closed by the generator)

    async def chunks() -> AsyncIterator[bytes]:
        try:
            while chunk := await asyncio.to_thread(handle.read, 1 << 20):
                yield chunk
        finally:
            handle.close()

    return chunks()


def recording_mp4_response(recording: SessionRecording) -> HttpResponseBase:
    """The MP4 once made (queued on the first ask); 202 while it is made; 409 if it failed."""
    recording = recording_export_request(recording=recording)
    if recording.mp4_status == ExportStatus.FAILED:
        raise Conflict(
            f"The MP4 export failed: {recording.mp4_failure_reason}",
            code="recording_export_failed",
            extra={"export_status": "failed", "failure_reason": recording.mp4_failure_reason},
        )
    path = recording_dir(account_id=recording.account_id, session_id=recording.session_id) / MP4_FILE
    if recording.mp4_status == ExportStatus.READY:
        try:
            size = path.stat().st_size
            # Served by the event loop as it reads (the ASGI handler would read a sync file whole).
            response = StreamingHttpResponse(_mp4_chunks(path), content_type="video/mp4")
        except OSError:
            raise NotFound("The video is gone (purged).", code="recording_not_found") from None
        response["Content-Length"] = str(size)
        response["Content-Disposition"] = f'attachment; filename="{recording.session_id}.mp4"'
        response["Cache-Control"] = "private, no-store"
        return response
    body = {
        "session_id": recording.session_id,
        "status": "processing",
        "detail": "The video is being made; ask again after Retry-After.",
    }
    answer = Response(RecordingExportOutput(body).data, status=202)
    answer["Retry-After"] = str(EXPORT_RETRY_AFTER_SECONDS)
    return answer


def _format_of(request: Request) -> str:
    wanted = request.query_params.get("format", "json")
    if wanted not in ("json", "mp4"):
        raise InvalidInput("format must be json or mp4.", code="invalid_format")
    return wanted


class ReplayFrameOutput(serializers.Serializer[Any]):
    t = serializers.IntegerField(help_text="When it was painted, ms since the epoch.")
    w = serializers.IntegerField()
    h = serializers.IntegerField()


class ReplayActionOutput(serializers.Serializer[Any]):
    t = serializers.IntegerField(help_text="When it finished (or was accepted), ms since the epoch.")
    action_id = serializers.CharField()
    type = serializers.CharField()
    status = serializers.CharField()
    frame = serializers.IntegerField(
        allow_null=True,
        help_text="The number of the frame showing the page as the action finished (the first at or "
        "after `t`); null if the recording has none (it stopped before, or the action did not finish).",
    )


class ReplayIndexOutput(serializers.Serializer[Any]):
    session_id = serializers.CharField()
    duration_ms = serializers.IntegerField()
    frames = ReplayFrameOutput(many=True)
    actions = ReplayActionOutput(many=True)


class ComputerRecordingView(APIView):
    content_negotiation_class = _FormatIsOurs

    @extend_schema(
        tags=[COMPUTERS],
        summary="The session's recording: status, frames, duration and a replay link; or its MP4",
        parameters=[SESSION_ID, FORMAT],
        responses={200: RecordingOutput, **_EXPORT_RESPONSES, **errors(404, 409)},
    )
    def get(self, request: Request, session_id: str) -> HttpResponseBase:
        wanted = _format_of(request)
        session = selectors.session_get(account=request_account(request), session_id=session_id)
        recording = SessionRecording.objects.filter(session=session).first()
        if recording is None:
            raise NotFound(
                'This session is not recorded (create it with "record": true).', code="recording_not_found"
            )
        if wanted == "mp4":
            return recording_mp4_response(recording)
        frames = recording.frame_count
        if recording.status == RecordingStatus.RECORDING:
            frames = len(recording_frames(account_id=recording.account_id, session_id=session.pk))
        replay_url = replay_expires_at = None
        if recording.status == RecordingStatus.READY:
            token, expires_at = recording_replay_token(recording=recording)
            replay_url = request.build_absolute_uri(reverse("v1:replay", args=[token]))
            replay_expires_at = iso(expires_at)
        body = {
            "session_id": session.pk,
            "status": recording.status,
            "failure_reason": recording.failure_reason or None,
            "frames": frames,
            "duration_ms": recording.duration_ms,
            "size_bytes": recording.size_bytes,
            "truncated": recording.truncated,
            "created_at": iso(recording.created_at),
            "finished_at": iso(recording.finished_at),
            "replay_url": replay_url,
            "replay_expires_at": replay_expires_at,
            "truncated_reason": recording.truncated_reason or None,
            "mp4_status": recording.mp4_status or None,
            "mp4_failure_reason": recording.mp4_failure_reason or None,
            "mp4_size_bytes": recording.mp4_size_bytes,
        }
        return Response(RecordingOutput(body).data)


class _ReplayView(APIView):
    """The token is the credential: no API key, no rate limit of an account."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes: list[Any] = []
    content_negotiation_class = _NeverNotAcceptable


def _not_found() -> dict[int, OpenApiResponse]:
    return {404: error_response(404, "Unknown or expired link, or not ready.")}


class ReplayPageView(_ReplayView):
    @extend_schema(
        tags=[ACTIONS],
        summary="A recording's replay page (the link from GET /v1/computers/{id}/recording)",
        auth=[],
        parameters=[TOKEN],
        responses={(200, "text/html"): OpenApiResponse(OpenApiTypes.STR), **_not_found()},
    )
    def get(self, request: Request, token: str) -> HttpResponse:
        recording = recording_replay_resolve(token)
        response = render(
            request._request,
            "sessions/replay.html",
            {
                "session_id": recording.session_id,
                "frame_count": recording.frame_count,
                "index_url": reverse("v1:replay-index", args=[token]),
                "frames_url": reverse("v1:replay", args=[token]) + "/frames",
                "mp4_url": reverse("v1:replay-mp4", args=[token]),
                "js_url": reverse("v1:replay-js", args=[token]),
                "css_url": reverse("v1:replay-css", args=[token]),
            },
        )
        response["Content-Security-Policy"] = _CSP
        response["Cache-Control"] = "no-store"
        response["Referrer-Policy"] = "no-referrer"
        # The admin's session page frames it; XFrameOptionsMiddleware would say DENY.
        response["X-Frame-Options"] = "SAMEORIGIN"
        return response


def _asset(body: str | bytes, content_type: str) -> HttpResponse:
    response = HttpResponse(body, content_type=content_type)
    response["Cache-Control"] = "private, max-age=300"
    return response


class ReplayScriptView(_ReplayView):
    @extend_schema(
        tags=[ACTIONS],
        summary="The replay page's script",
        auth=[],
        parameters=[TOKEN],
        responses={(200, "text/javascript"): OpenApiResponse(OpenApiTypes.STR), **_not_found()},
    )
    def get(self, request: Request, token: str) -> HttpResponse:
        recording_replay_resolve(token)
        return _asset(REPLAY_JS, "text/javascript; charset=utf-8")


class ReplayStyleView(_ReplayView):
    @extend_schema(
        tags=[ACTIONS],
        summary="The replay page's style",
        auth=[],
        parameters=[TOKEN],
        responses={(200, "text/css"): OpenApiResponse(OpenApiTypes.STR), **_not_found()},
    )
    def get(self, request: Request, token: str) -> HttpResponse:
        recording_replay_resolve(token)
        return _asset(REPLAY_CSS, "text/css; charset=utf-8")


class ReplayIndexView(_ReplayView):
    @extend_schema(
        tags=[ACTIONS],
        summary="A recording's frames (times, sizes) and the session's actions, for the replay page",
        auth=[],
        parameters=[TOKEN],
        responses={200: ReplayIndexOutput, **_not_found()},
    )
    def get(self, request: Request, token: str) -> Response:
        recording = recording_replay_resolve(token)
        frames = recording_frames_settled(
            account_id=recording.account_id,
            session_id=recording.session_id,
            frame_count=recording.frame_count,
        )
        times = [f.at_ms for f in frames]
        actions = []
        for a in Action.objects.filter(session_id=recording.session_id).order_by("id"):
            t = int((a.finished_at or a.created_at).timestamp() * 1000)
            actions.append(
                {
                    "t": t,
                    "action_id": a.public_id,
                    "type": a.type,
                    "status": a.status,
                    # The recorder writes a frame at or after each finished action (the page as
                    # it was then): the first frame from its finish on.
                    "frame": frame_at_or_after(times, t) if a.finished_at else None,
                }
            )
        body = {
            "session_id": recording.session_id,
            "duration_ms": recording.duration_ms,
            "frames": [{"t": f.at_ms, "w": f.width, "h": f.height} for f in frames],
            "actions": actions,
        }
        response = Response(ReplayIndexOutput(body).data)
        response["Cache-Control"] = "private, max-age=300"
        return response


class ReplayFrameView(_ReplayView):
    @extend_schema(
        tags=[ACTIONS],
        summary="One frame of a recording (JPEG), by its number in the index",
        auth=[],
        parameters=[TOKEN, OpenApiParameter("number", OpenApiTypes.INT, OpenApiParameter.PATH)],
        responses={(200, "image/jpeg"): OpenApiResponse(OpenApiTypes.BINARY), **_not_found()},
    )
    def get(self, request: Request, token: str, number: int) -> HttpResponse:
        recording = recording_replay_resolve(token)
        frames = recording_frames_settled(
            account_id=recording.account_id,
            session_id=recording.session_id,
            frame_count=recording.frame_count,
        )
        if not 0 <= number < len(frames):
            raise NotFound("No such frame.", code="frame_not_found")
        data = recording_frame_bytes(
            account_id=recording.account_id, session_id=recording.session_id, frame=frames[number]
        )
        return _asset(data, "image/jpeg")


class ReplayMp4View(_ReplayView):
    @extend_schema(
        tags=[ACTIONS],
        summary="A recording's MP4, through its replay link (as GET .../recording?format=mp4)",
        auth=[],
        parameters=[TOKEN],
        responses={**_EXPORT_RESPONSES, **_not_found(), 409: error_response(409, "The export failed.")},
    )
    def get(self, request: Request, token: str) -> HttpResponseBase:
        return recording_mp4_response(recording_replay_resolve(token))
