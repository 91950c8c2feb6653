"""Domain errors and the one place that turns any API error into our JSON error shape.

The shape serves DRF clients (`detail`, `code`) and Tzafon clients (`status`, `error_message`)
at once: {"status": "error", "code": "...", "detail": "...", "error_message": "...",
"timestamp": "..."} plus `errors` (per-field messages) for validation failures.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import redis.exceptions
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, JsonResponse
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response

from project.db import is_conflict

logger = logging.getLogger(__name__)


class ApplicationError(Exception):
    status_code = 400
    code = "bad_request"
    default_detail = "Bad request."
    # False: `x-should-retry: false` even on a status the SDK retries (a 409 that is final).
    retryable: bool | None = None

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        retry_after: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.detail = detail or self.default_detail
        if code:
            self.code = code
        self.retry_after = retry_after
        self.extra = extra or {}
        super().__init__(self.detail)


class InvalidInput(ApplicationError):
    status_code = 400
    code = "invalid"
    default_detail = "Invalid input."


class PayloadTooLarge(ApplicationError):
    """Final: the same body is refused again (`x-should-retry: false`)."""

    status_code = 413
    code = "payload_too_large"
    default_detail = "The request body is too large."
    retryable = False


class Conflict(ApplicationError):
    """A final 409 (a finished job, a reused Idempotency-Key): sending it again cannot succeed."""

    status_code = 409
    code = "conflict"
    default_detail = "Conflict."
    retryable = False


class NotFound(ApplicationError):
    status_code = 404
    code = "not_found"
    default_detail = "Not found."


class InsufficientCredits(ApplicationError):
    status_code = 402
    code = "insufficient_credits"
    default_detail = "Not enough credits."


class KeySpendCapReached(ApplicationError):
    """The API key's monthly spend cap (set in the console) does not cover this charge."""

    status_code = 402
    code = "key_spend_cap_reached"
    default_detail = "This API key's monthly spend cap is reached."


class Busy(ApplicationError):
    """Transient: the SDK retries 409 by itself."""

    status_code = 409
    code = "busy"
    default_detail = "Busy, try again."


class SessionEnded(ApplicationError):
    status_code = 410
    code = "session_ended"
    default_detail = "The session has ended."


class TooManyRequests(ApplicationError):
    status_code = 429
    code = "too_many_requests"
    default_detail = "Too many requests."


class NotImplementedByServer(ApplicationError):
    status_code = 501
    code = "not_implemented"
    default_detail = "Not implemented."


class ServiceUnavailable(ApplicationError):
    status_code = 503
    code = "unavailable"
    default_detail = "Service unavailable."


# A dependency that is down or restarting (Redis, PostgreSQL, the broker): the request did not
# happen, the client may send it again. Django drops a connection that failed like this at the
# end of the request, so the retry gets a fresh one.
OUTAGES: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    BrokerError,
    OperationalError,
    InterfaceError,
)
OUTAGE_RETRY_AFTER_SECONDS = 2


def is_outage(exc: BaseException) -> bool:
    if isinstance(exc, OperationalError | InterfaceError):
        # Not every OperationalError is an outage: a deadlock or a serialization failure is ours.
        return not is_conflict(exc)
    return isinstance(exc, OUTAGES)


def outage_response_parts() -> tuple[int, dict[str, Any], dict[str, str]]:
    body = error_body(
        status_code=503,
        code="service_unavailable",
        detail="A service this request needs is briefly unavailable; nothing was done. Try again.",
    )
    return 503, body, {"Retry-After": str(OUTAGE_RETRY_AFTER_SECONDS)}


def error_body(*, status_code: int, code: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {
        "status": "error",
        "code": code,
        "detail": detail,
        "error_message": detail,
        "timestamp": timezone.now().isoformat().replace("+00:00", "Z"),
        **extra,
    }


def _flatten(errors: Any, prefix: str = "") -> list[str]:
    if isinstance(errors, dict):
        out: list[str] = []
        for key, value in errors.items():
            name = key if key != "non_field_errors" else ""
            out += _flatten(value, f"{prefix}.{name}" if prefix and name else prefix or name)
        return out
    if isinstance(errors, list):
        return [msg for item in errors for msg in _flatten(item, prefix)]
    return [f"{prefix}: {errors}" if prefix else str(errors)]


_DRF_CODES = {
    400: "invalid",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    415: "unsupported_media_type",
    429: "too_many_requests",
}


# The SDK retries 408, 409, 429 and every 5xx unless `x-should-retry` says otherwise. Only these
# can succeed when sent again unchanged; every other error says so, so that no client replays a
# 501 (or a 500 on a non-idempotent action) three times.
RETRYABLE_STATUSES = frozenset({408, 409, 429, 503})


def retry_headers(status_code: int) -> dict[str, str]:
    return {} if status_code in RETRYABLE_STATUSES or status_code < 400 else {"x-should-retry": "false"}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    # Imported here: DRF imports this module while rest_framework.views is still loading.
    from rest_framework.views import set_rollback

    headers: dict[str, str] = {}
    extra: dict[str, Any] = {}
    if isinstance(exc, ApplicationError):
        status_code, code, detail = exc.status_code, exc.code, exc.detail
        extra.update(exc.extra)
        if exc.retry_after is not None:
            headers["Retry-After"] = str(exc.retry_after)
    elif isinstance(exc, Http404):
        status_code, code, detail = 404, "not_found", "Not found."
    elif isinstance(exc, RequestDataTooBig):
        status_code, code = 413, "payload_too_large"
        detail = f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes."
    elif isinstance(exc, drf_exceptions.ValidationError):
        status_code, code = 400, "invalid"
        messages = _flatten(exc.detail)
        detail = "Invalid input. " + " ".join(messages) if messages else "Invalid input."
        extra["errors"] = exc.detail
    elif isinstance(exc, drf_exceptions.APIException):
        status_code = exc.status_code
        code = _DRF_CODES.get(status_code, "error")
        detail = str(exc.detail)
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
        wait = getattr(exc, "wait", None)
        if wait is not None:
            headers["Retry-After"] = str(max(1, int(wait)))
    elif is_outage(exc):
        logger.warning("dependency outage during %s: %r", _view_name(context), exc)
        set_rollback()
        status_code, body, headers = outage_response_parts()
        return Response(body, status=status_code, headers=headers)
    else:
        return None  # a bug: Django logs it and handler500 answers in JSON
    set_rollback()
    headers.update(retry_headers(status_code))
    if isinstance(exc, ApplicationError) and exc.retryable is False:
        headers["x-should-retry"] = "false"
    body = error_body(status_code=status_code, code=code, detail=detail, **extra)
    return Response(body, status=status_code, headers=headers)


def _view_name(context: dict[str, Any]) -> str:
    view = context.get("view")
    return type(view).__name__ if view is not None else "a request"


def json_400(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    # Django's own refusals before any view: a Host not in DJANGO_ALLOWED_HOSTS, a malformed request.
    body = error_body(status_code=400, code="bad_request", detail="Bad request.")
    return JsonResponse(body, status=400, headers=retry_headers(400))


def json_403(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    body = error_body(status_code=403, code="forbidden", detail="Forbidden.")
    return JsonResponse(body, status=403, headers=retry_headers(403))


def json_404(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    body = error_body(status_code=404, code="not_found", detail="Not found.")
    return JsonResponse(body, status=404, headers=retry_headers(404))


def json_500(request: HttpRequest) -> JsonResponse:
    exc = sys.exc_info()[1]
    if exc is not None and is_outage(exc):
        # Outside DRF's handler (a middleware, a plain Django view): still an outage, not a bug.
        status_code, body, headers = outage_response_parts()
        return JsonResponse(body, status=status_code, headers=headers)
    body = error_body(status_code=500, code="server_error", detail="Internal server error.")
    # A 5xx on a non-idempotent request must not be replayed by the SDK.
    return JsonResponse(body, status=500, headers={"x-should-retry": "false"})
