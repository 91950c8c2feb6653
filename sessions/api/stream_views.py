"""Streams of a session (server-sent events), served by the ASGI web process's stream handler.

The view class is an ordinary DRF view for its preflight (the key, the plan's rate limit, the
session lookup: 404 for another account's, the open-stream slot: 429) and for the OpenAPI
description; `async_stream_view` runs that preflight on a web thread and hands the stream
itself to the event loop, where it holds no thread (project/asgi.py, sessions/streams.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, cast

from django.http import HttpRequest, HttpResponseBase, StreamingHttpResponse
from rest_framework.request import Request
from rest_framework.views import APIView

from accounts.authentication import request_account
from project.exceptions import NotImplementedByServer
from project.web_threads import run_in_web_thread
from sessions import selectors, services
from sessions.api import schema
from sessions.api.action_views import _NeverNotAcceptable
from sessions.models import BrowserSession, SessionStatus
from sessions.screencast import screencast_watch
from sessions.streams import (
    last_event_id_of,
    session_event_stream,
    session_screencast_stream,
    stream_slot_take,
)


def async_stream_view(view_class: type[APIView]) -> Callable[..., HttpResponseBase]:
    """An async view around a DRF view whose GET answers with a streaming response: the DRF part
    runs on a web thread, the stream on the event loop."""
    sync_view = view_class.as_view()

    def preflight(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        response = sync_view(request, *args, **kwargs)
        if not response.streaming:
            response.render()  # DRF's Response: an error body
        return response

    async def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        return await run_in_web_thread(preflight, request, *args, **kwargs)

    # What drf-spectacular and Django read off a view function.
    view.cls = view_class  # type: ignore[attr-defined]
    view.initkwargs = {}  # type: ignore[attr-defined]
    view.csrf_exempt = True  # type: ignore[attr-defined]
    # Django takes async views; django-stubs' path() types only sync ones.
    return cast(Callable[..., HttpResponseBase], view)


def screencast_backend_check(session: BrowserSession) -> None:
    if session.backend != "local":
        raise NotImplementedByServer(
            "The screencast is served for browsers of the local backend only.",
            code="screencast_not_supported",
        )


def _event_stream_response(stream: Any) -> StreamingHttpResponse:
    response = StreamingHttpResponse(stream, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass events on as they come
    return response


class ComputerEventsView(APIView):
    content_negotiation_class = _NeverNotAcceptable

    @schema.events_schema
    def get(self, request: Request, session_id: str) -> StreamingHttpResponse:
        request._request.get_host()  # ALLOWED_HOSTS: the stream handler runs no middleware
        account = request_account(request)
        session = selectors.session_get(account=account, session_id=session_id)
        session = services.session_enforce_expiry(session=session)
        after = last_event_id_of(request.headers.get("Last-Event-ID"))
        slot = stream_slot_take(account_id=account.pk)
        return _event_stream_response(
            session_event_stream(
                session_id=session.pk,
                account_id=account.pk,
                slot=slot,
                after=after,
                ended=session.status == SessionStatus.TERMINATED,
            )
        )


class ComputerScreencastView(APIView):
    content_negotiation_class = _NeverNotAcceptable

    @schema.screencast_schema
    def get(self, request: Request, session_id: str) -> StreamingHttpResponse:
        request._request.get_host()  # ALLOWED_HOSTS: the stream handler runs no middleware
        account = request_account(request)
        session = selectors.session_get(account=account, session_id=session_id)
        session = services.session_require_active(session=session)  # 410 ended, 409 starting
        screencast_backend_check(session)
        slot = stream_slot_take(account_id=account.pk)
        watcher = uuid.uuid4().hex
        screencast_watch(session_id=session.pk, host=session.host, token=watcher)
        return _event_stream_response(
            session_screencast_stream(
                session_id=session.pk, account_id=account.pk, slot=slot, watcher=watcher
            )
        )
