"""Middleware that must run before anything reads the request."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from project.exceptions import error_body


class BodySizeLimitMiddleware:
    """413 for a body larger than `API_MAX_BODY_BYTES`, judged by its Content-Length, unread.

    A job submit (`POST /v1/jobs`, up to 100,000 URLs) may be up to `JOB_MAX_BODY_BYTES`.

    DRF reads the whole body before its parser runs, and Django's `DATA_UPLOAD_MAX_MEMORY_SIZE`
    answers a too-large body with a bare 400; refusing here costs nothing and says why. Django's
    request stream never reads past Content-Length, and a body without one is not read at all.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method == "POST" and request.path_info == "/v1/jobs":
            limit = settings.JOB_MAX_BODY_BYTES
        else:
            limit = settings.API_MAX_BODY_BYTES
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > limit:
            detail = f"The request body is larger than {limit} bytes."
            body = error_body(status_code=413, code="payload_too_large", detail=detail, limit=limit)
            # Not retryable: the same body will be refused again.
            return JsonResponse(body, status=413, headers={"x-should-retry": "false"})
        return self.get_response(request)
