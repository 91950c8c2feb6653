"""What every operation of the OpenAPI description shares: the Bearer scheme, the error body,
the error responses and their headers, and the public schema and docs views.

Served at /v1/openapi.json, /v1/openapi.yaml and /v1/docs (Swagger UI from our own static
files, drf-spectacular-sidecar). Each API module describes its own operations with
`extend_schema`; this module stays below the apps and never imports them.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, inline_serializer
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerView, SpectacularYAMLAPIView
from rest_framework import serializers
from rest_framework.permissions import AllowAny


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "An API key: `Authorization: Bearer <key>`. 10 failed authentications from one "
                "address within 10 minutes lock that address out (429) until the window passes."
            ),
        }


class ErrorBody(serializers.Serializer[Any]):
    """Every error: DRF clients read `detail` and `code`, Tzafon clients `status` and
    `error_message`. Some codes add fields (`limit`, `max_lifetime_seconds`, ...)."""

    status = serializers.ChoiceField(choices=["error"])
    code = serializers.CharField(help_text="Machine-readable, e.g. `invalid`, `not_found`, `busy`.")
    detail = serializers.CharField(help_text="Human-readable.")
    error_message = serializers.CharField(help_text="The same text as `detail`.")
    timestamp = serializers.CharField(help_text="ISO 8601, UTC.")
    # `errors` is declared in get_fields: as a class attribute it would hide Serializer.errors
    # from the type checker.

    def get_fields(self) -> dict[str, serializers.Field]:  # type: ignore[type-arg]  # drf-stubs' Field is generic
        return {
            **super().get_fields(),
            "errors": serializers.JSONField(
                required=False, help_text="Per-field messages (400 `invalid` only)."
            ),
        }


_NO_RETRY = OpenApiParameter(
    "x-should-retry",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    enum=["false"],
    description="`false` on every error that sending the request again cannot fix.",
)
_RETRY_AFTER = OpenApiParameter(
    "Retry-After", OpenApiTypes.INT, OpenApiParameter.HEADER, description="Seconds to wait."
)

_ERRORS: dict[int, tuple[str, str, str]] = {
    400: ("Bad input: nothing was run.", "invalid", "Invalid input. url: This field is required."),
    401: ("Missing, invalid or revoked API key.", "unauthenticated", "Invalid or revoked API key."),
    402: ("Not enough credits for this; nothing was run.", "insufficient_credits", "Not enough credits."),
    404: (
        "Unknown id, or another account's (they look the same).",
        "not_found",
        "No session comp_0a1b2c with this id.",
    ),
    405: ("Method not allowed on this path.", "method_not_allowed", 'Method "PUT" not allowed.'),
    409: (
        "Busy, try again (the SDK retries by itself).",
        "busy",
        "Another request on this session is being accepted.",
    ),
    410: ("The session has ended; start a new one.", "session_ended", "The session has ended."),
    413: ("The request body is too large.", "payload_too_large", "The request body is too large."),
    415: ("The body is not JSON.", "unsupported_media_type", 'Unsupported media type "text/plain".'),
    422: (
        "Well-formed, but what it names cannot be used (a saved state that does not restore).",
        "environment_restore_failed",
        "The saved state of environment comp_0a1b2c could not be restored.",
    ),
    429: (
        "Plan concurrency or rate limit, or the failed-authentication lockout.",
        "too_many_requests",
        "The free plan allows 2 concurrent sessions and 2 are running.",
    ),
    501: ("Not served by this server.", "action_not_supported", "Not implemented."),
    503: ("Temporarily unavailable; retry.", "unavailable", "Service unavailable."),
}
# Every authenticated operation can answer these.
# 413: every request goes through the body-size limit (project/middleware.py).
COMMON_ERRORS = (400, 401, 405, 413, 415, 429)


def error_response(status: int, description: str | None = None) -> OpenApiResponse:
    text, code, detail = _ERRORS[status]
    return OpenApiResponse(
        ErrorBody,
        description=description or text,
        examples=[
            OpenApiExample(
                code,
                value={
                    "status": "error",
                    "code": code,
                    "detail": detail,
                    "error_message": detail,
                    "timestamp": "2026-11-01T12:00:00.000000Z",
                },
                response_only=True,
                status_codes=[str(status)],
            )
        ],
    )


def errors(*statuses: int) -> dict[int, OpenApiResponse]:
    """The error responses of an operation: the common ones plus `statuses`."""
    return {status: error_response(status) for status in sorted({*COMMON_ERRORS, *statuses})}


PAGE_PARAMETERS = [
    OpenApiParameter("limit", OpenApiTypes.INT, description="1-200, default 50."),
    OpenApiParameter("offset", OpenApiTypes.INT, description=">= 0, default 0."),
]


def page_of(name: str, item: Any) -> Any:
    return inline_serializer(
        name,
        {
            "results": item,
            "limit": serializers.IntegerField(),
            "offset": serializers.IntegerField(),
            "has_more": serializers.BooleanField(),
        },
    )


# Public: the description of the API needs no key, and a browser opening /v1/docs sends none,
# so these views have no authentication at all (nothing to fail, so no lockout either).
_PUBLIC: dict[str, Any] = {
    "authentication_classes": [],
    "permission_classes": [AllowAny],
    "throttle_classes": [],
}


class SchemaJsonView(SpectacularJSONAPIView):
    authentication_classes = _PUBLIC["authentication_classes"]
    permission_classes = _PUBLIC["permission_classes"]
    throttle_classes = _PUBLIC["throttle_classes"]


class SchemaYamlView(SpectacularYAMLAPIView):
    authentication_classes = _PUBLIC["authentication_classes"]
    permission_classes = _PUBLIC["permission_classes"]
    throttle_classes = _PUBLIC["throttle_classes"]


class DocsView(SpectacularSwaggerView):
    authentication_classes = _PUBLIC["authentication_classes"]
    permission_classes = _PUBLIC["permission_classes"]
    throttle_classes = _PUBLIC["throttle_classes"]
