"""Requests that wait for a worker's completion signal without holding a web thread.

A create waits for its browser, an action for its result. The view accepts the request on a web
thread like any DRF view (validation, auth, charging, queueing: its errors are answered as
always), then returns an `AwaitedResponse` instead of waiting: what to wait for (a completion
event of project/completion.py, a bound) and how to answer once it came (`then`, sync). That
response goes back out through the middleware like any other, and ApiHandler (project/asgi.py)
settles it on the event loop:

1. wait with redis.asyncio (the loop's one connection pool): no thread, no database connection;
2. give back the account's waiting slot (accounts/inflight.py), whatever happened;
3. answer: `then` on a web thread (a short hop: it may read the database), its errors through
   DRF's exception handler as if the view had raised them; a Redis outage during the wait is
   answered as the view answers one (503 service_unavailable). The middleware's headers on the
   stand-in response are kept on the answer.

A client that disconnects mid-wait cancels step 1 (Django's ASGI handler cancels the request's
task): its Redis connection is closed, its slot given back, and the action settles in its worker
anyway (its result is kept for GET /v1/actions/{id}). Under a sync handler (WSGI, Django's test
client) there is no loop: the view waits on its thread, as it did before (`awaited_response`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.handlers.exception import response_for_exception
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils.log import log_response
from redis.exceptions import RedisError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from project.completion import completion_wait, completion_wait_async
from project.slots import slot_release, slot_release_async
from project.web_threads import run_in_web_thread

Payload = dict[str, Any] | None

_ON_LOOP = "_browserfleet_waits_on_loop"


def request_mark_waits_on_loop(request: HttpRequest) -> None:
    """ApiHandler's mark: this request's waits may be handed to the event loop."""
    setattr(request, _ON_LOOP, True)


@dataclass(frozen=True)
class HeldSlot:
    """A slot of project/slots.py the waiting request gives back when its wait ends."""

    key: str
    token: str  # "": no limit, nothing to give back


class AwaitedResponse(HttpResponse):
    """A stand-in answer: the view accepted the request; ApiHandler waits, then answers."""

    def __init__(
        self,
        *,
        request: HttpRequest,
        event: str,
        timeout: float,
        then: Callable[[Payload, Exception | None], HttpResponseBase],
        slot: HeldSlot | None,
    ) -> None:
        super().__init__()
        self._request = request
        self._event, self._timeout, self._then, self._slot = event, timeout, then, slot

    async def settle(self) -> HttpResponseBase:
        payload: Payload = None
        error: Exception | None = None
        try:
            payload = await completion_wait_async(self._event, timeout=self._timeout)
        except Exception as exc:  # Redis away (an outage: 503), or a bug: answered below
            error = exc
        finally:  # also when the client went away (cancelled)
            if self._slot is not None and self._slot.token:
                await slot_release_async(key=self._slot.key, token=self._slot.token)
        answer = await run_in_web_thread(self._answer, payload, error)
        return self._with_middleware_headers(answer)

    def settle_on_thread(self) -> HttpResponseBase:
        """The same wait on the calling thread (a sync handler: no event loop)."""
        payload: Payload = None
        error: Exception | None = None
        try:
            payload = completion_wait(self._event, timeout=self._timeout)
        except Exception as exc:
            error = exc
        finally:
            if self._slot is not None and self._slot.token:
                with contextlib.suppress(RedisError):
                    slot_release(key=self._slot.key, token=self._slot.token)
        return self._then(payload, error)

    def _answer(self, payload: Payload, error: Exception | None) -> HttpResponseBase:
        try:
            return self._then(payload, error)
        except Exception as exc:  # a bug: logged, and answered by handler500 as Django would
            return response_for_exception(self._request, exc)

    def _with_middleware_headers(self, answer: HttpResponseBase) -> HttpResponseBase:
        for header, value in self.items():
            if header.lower() not in ("content-type", "content-length") and not answer.has_header(header):
                answer[header] = value
        answer.cookies.update(self.cookies)
        if not answer.streaming:
            answer["Content-Length"] = str(len(answer.content))  # type: ignore[attr-defined]
        answer._resource_closers.extend(self._resource_closers)  # type: ignore[attr-defined]
        self._resource_closers.clear()  # type: ignore[attr-defined]
        if answer.status_code >= 400 and isinstance(answer, HttpResponse):  # as get_response logs
            log_response(
                "%s: %s", answer.reason_phrase, self._request.path, response=answer, request=self._request
            )
        return answer


def awaited_response(
    view: APIView,
    request: Request,
    *,
    event: str,
    timeout: float,
    then: Callable[[Payload], Response],
    slot: HeldSlot | None = None,
) -> HttpResponseBase:
    """What a DRF view returns to wait (up to `timeout`) for `event` and answer with
    `then(payload)` (payload None: it did not come in time). `slot` is given back when the wait
    ends. Under ApiHandler, an AwaitedResponse; elsewhere, the answer, waited for on this thread."""

    def answer(payload: Payload, error: Exception | None) -> HttpResponseBase:
        try:
            if error is not None:
                raise error
            response = then(payload)
        except Exception as exc:
            response = view.handle_exception(exc)  # DRF's JSON errors; re-raises a bug
        finalized = view.finalize_response(request, response)
        if isinstance(finalized, Response):
            finalized.render()
        return finalized

    awaited = AwaitedResponse(request=request._request, event=event, timeout=timeout, then=answer, slot=slot)
    if getattr(request._request, _ON_LOOP, False):
        return awaited
    return awaited.settle_on_thread()
