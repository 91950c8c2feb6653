"""The web process under ASGI: `gunicorn project.asgi:application -k project.asgi_worker.Worker`.

Two kinds of request share one origin (the SDK has one base URL):

- The API (DRF, sync views): the whole middleware chain and the view run in ONE call on a
  bounded pool of long-lived threads (project/web_threads.py), as under gunicorn's gthread: each
  thread keeps its database connection between requests (CONN_MAX_AGE), and a request costs one
  hop from the event loop to a thread and back. (Django's own ASGI path would run each sync
  middleware in its own hop, on a new thread per request, with a new database connection each.)
  A create or an action that waits for its result is accepted on a thread, then waits on the
  event loop (redis.asyncio) with no thread held, and is answered in a second short hop
  (project/awaiting.py). Hundreds of waiting requests cost coroutines, not threads. A
  response streamed from a sync iterator (a job's export, the ledger's CSV, a screenshot file)
  is read on the pool a batch at a time as the client takes it (Django's handler would read it
  whole into memory first, on asgiref's one sync thread, which every request's start signal
  also waits for).
- Streams (events, screencast, the live viewer's feed; `STREAM_PATHS`): async views with no
  middleware, which hold no thread while they wait on Redis; only their preflight (key,
  throttle, session lookup) runs on the pool. Hundreds of open streams cost coroutines, not
  threads.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any, cast

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

import django

django.setup(set_prefix=False)

from django.core.handlers.asgi import ASGIHandler  # noqa: E402
from django.core.handlers.exception import convert_exception_to_response  # noqa: E402
from django.http import HttpRequest, HttpResponseBase, StreamingHttpResponse  # noqa: E402

from project.awaiting import AwaitedResponse, request_mark_waits_on_loop  # noqa: E402
from project.web_threads import iterate_in_web_threads, run_in_web_thread  # noqa: E402

# Served by StreamHandler: paths whose views are async and stream. (The same URLs are in the
# URLconf; only the handler that runs them differs.)
STREAM_PATHS = re.compile(r"^/(?:v1/)?computers/[^/]+/(?:events|screencast)$|^/v1/live/[^/]+/feed$")


class _NoThreadPerRequest(ASGIHandler):
    """Django's ASGIHandler without its per-request ThreadSensitiveContext: that context makes a
    new thread for each request just to run the request_started/finished signals and
    `response.close()`; without it those small calls share asgiref's one sync thread, and the
    views run on the web pool (run_in_web_thread)."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django serves HTTP only, not {scope['type']}.")
        await self.handle(scope, receive, send)


class ApiHandler(_NoThreadPerRequest):
    """Django's sync middleware chain and views, one web-pool thread per request; a request that
    waits for a completion (a create, an action) waits on the loop in between (project/awaiting.py)."""

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        request_mark_waits_on_loop(request)
        response = await run_in_web_thread(self.get_response, request)
        if isinstance(response, AwaitedResponse):
            return await response.settle()
        if isinstance(response, StreamingHttpResponse) and not response.is_async:
            # A sync stream (an export, a file): read on the pool a batch at a time, not whole.
            # Not is_async: a sync iterator (Django's map of make_bytes).
            content = cast(Iterator[bytes], response.streaming_content)
            response.streaming_content = iterate_in_web_threads(content)
        return response


class StreamHandler(_NoThreadPerRequest):
    """Async views only, no middleware: the views check the key and the host themselves."""

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware: list[Any] = []
        self._template_response_middleware: list[Any] = []
        self._exception_middleware: list[Any] = []
        self._middleware_chain = convert_exception_to_response(
            self._get_response_async  # type: ignore[attr-defined]  # django-stubs leaves it out
        )


_api = ApiHandler()
_streams = StreamHandler()


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        # Nothing to start or stop; answer so that servers with lifespan "on" go ahead.
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "http" and STREAM_PATHS.match(scope["path"]):
        await _streams(scope, receive, send)
    else:
        await _api(scope, receive, send)
