"""project/awaiting.py on its own: a view's AwaitedResponse settled on an event loop, as ApiHandler
settles it (the flows in tests/flows/test_waiting_without_threads.py go through the server)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from django.test import RequestFactory
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from project.awaiting import AwaitedResponse, HeldSlot, awaited_response, request_mark_waits_on_loop
from project.completion import completion_publish
from project.exceptions import Busy
from project.redis import get_redis
from project.slots import slot_take


class _WaitView(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes: list[Any] = []
    event = ""
    slot: HeldSlot | None = None

    def post(self, request: Request) -> Any:
        def then(done: dict[str, Any] | None) -> Response:
            if done is None:
                return Response({"done": None}, status=202)
            if done.get("refuse"):
                raise Busy("not yet", code="still_busy", retry_after=2)
            return Response({"done": done})

        return awaited_response(self, request, event=self.event, timeout=1.0, then=then, slot=self.slot)


def _settled(event: str, *, slot: HeldSlot | None = None, on_loop: bool = True) -> Any:
    request = RequestFactory().post("/wait", data={}, content_type="application/json")
    if on_loop:
        request_mark_waits_on_loop(request)
    response = _WaitView.as_view(event=event, slot=slot)(request)
    if not on_loop:
        return response
    assert isinstance(response, AwaitedResponse)
    response["X-Frame-Options"] = "DENY"  # what a middleware adds on its way out
    return asyncio.run(response.settle())


@pytest.fixture
def event() -> str:
    return f"test-awaiting:{uuid.uuid4().hex}"


def test_the_answer_comes_from_the_completion_with_the_middlewares_headers(event: str) -> None:
    key = f"bf:test-slots:{uuid.uuid4().hex}"
    token = slot_take(key=key, limit=1, ttl=60)
    assert token
    completion_publish(event, {"status": "ok"})
    response = _settled(event, slot=HeldSlot(key=key, token=token))
    assert response.status_code == 200
    assert response.content == b'{"done":{"status":"ok"}}'
    assert response["Content-Length"] == str(len(response.content))
    assert response["Content-Type"] == "application/json"
    assert response["X-Frame-Options"] == "DENY"
    assert get_redis().zcard(key) == 0  # the slot is given back


def test_a_wait_that_times_out_and_an_error_of_the_answer(event: str) -> None:
    assert _settled(event).status_code == 202  # nothing came within the bound

    completion_publish(event, {"refuse": True})
    refused = _settled(event)
    assert refused.status_code == 409
    assert refused["Retry-After"] == "2"
    assert b'"code":"still_busy"' in refused.content


def test_redis_away_during_the_wait_is_an_outage(event: str, settings: Any) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there (a new loop, a new client)
    response = _settled(event)
    assert response.status_code == 503
    assert b'"code":"service_unavailable"' in response.content
    assert int(response["Retry-After"]) >= 1


def test_without_a_loop_the_view_waits_on_its_thread(event: str) -> None:
    completion_publish(event, {"status": "ok"})
    response = _settled(event, on_loop=False)
    assert not isinstance(response, AwaitedResponse)
    assert response.status_code == 200
    assert response.data == {"done": {"status": "ok"}}
