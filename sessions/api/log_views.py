"""GET /v1/computers/{id}/logs: the session's console messages, page errors and network requests
(sessions/page_logs.py), cursor-paged, or all of them as NDJSON (`format=ndjson`). Kept after
the session ended for SESSION_LOGS_RETENTION_DAYS. Another account's session is 404."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import request_account
from project.exceptions import InvalidInput
from project.openapi import errors
from sessions import selectors
from sessions.api.action_views import _NeverNotAcceptable
from sessions.api.schema import COMPUTERS, SESSION_ID
from sessions.page_logs import KINDS, LEVELS, log_filter_parse, page_logs_ndjson, page_logs_page

_LIMIT_MAX = 1000


class PageLogEntryOutput(serializers.Serializer[Any]):
    """One entry; fields that do not apply to its type are null."""

    id = serializers.CharField(help_text="Increasing; the cursor (`after`) of the next page.")
    type = serializers.ChoiceField(choices=list(KINDS))
    level = serializers.ChoiceField(choices=list(LEVELS))
    timestamp = serializers.CharField(help_text="When it happened (a request: when it was sent).")
    message = serializers.CharField(allow_null=True, help_text="console, error: the text (cut at 2000).")
    source = serializers.CharField(  # type: ignore[assignment]  # an answer field named like Field.source
        allow_null=True,
        help_text="console: `console.<method>` or the browser's source (network, security...).",
    )
    url = serializers.CharField(allow_null=True, help_text="The request's URL; console, error: the script's.")
    line = serializers.IntegerField(allow_null=True)
    column = serializers.IntegerField(allow_null=True)
    tab_id = serializers.CharField(allow_null=True, help_text="The tab it came from.")
    method = serializers.CharField(allow_null=True)
    status = serializers.IntegerField(
        allow_null=True, help_text="network: the HTTP status; null if none came."
    )
    status_text = serializers.CharField(allow_null=True)
    resource_type = serializers.CharField(allow_null=True, help_text="Document, Script, XHR, Fetch, Image...")
    mime_type = serializers.CharField(allow_null=True)
    bytes = serializers.IntegerField(allow_null=True, help_text="network: bytes received (encoded).")
    duration_ms = serializers.FloatField(allow_null=True, help_text="network: from sent to loaded or failed.")
    from_cache = serializers.BooleanField(allow_null=True)
    error = serializers.CharField(allow_null=True, help_text="network: why it failed (net error, blocked).")


class PageLogDropped(serializers.Serializer[Any]):
    console = serializers.IntegerField()
    error = serializers.IntegerField()
    network = serializers.IntegerField()


class PageLogPageOutput(serializers.Serializer[Any]):
    data = PageLogEntryOutput(many=True)  # type: ignore[assignment]  # an answer field named like .data
    has_more = serializers.BooleanField()
    next_cursor = serializers.CharField(allow_null=True, help_text="Pass as `after` for the next page.")
    stored = serializers.IntegerField(help_text="Entries stored for the session (all types).")
    dropped = PageLogDropped(help_text="Entries not stored because the session's log cap was reached.")
    collecting = serializers.BooleanField(help_text="The session is live: more entries may come.")


class _FormatIsOurs(_NeverNotAcceptable):
    """`format` is this endpoint's own parameter (json or ndjson), not DRF's renderer override."""

    def select_renderer(self, request: Request, renderers: Any, format_suffix: str | None = None) -> Any:
        return renderers[0], renderers[0].media_type


class ComputerLogsView(APIView):
    content_negotiation_class = _FormatIsOurs

    @extend_schema(
        tags=[COMPUTERS],
        summary="The session's console messages, page errors and network requests",
        description=(
            "Oldest first, cursor-paged (`after` = the last `id` seen). `format=ndjson` answers every "
            "matching entry as `application/x-ndjson`, one object a line. Kept after the session ended "
            "for the server's retention period."
        ),
        parameters=[
            SESSION_ID,
            OpenApiParameter(
                "type",
                OpenApiTypes.STR,
                description="console, error or network; comma-separated or repeated for several.",
            ),
            OpenApiParameter("kind", OpenApiTypes.STR, description="Same as `type`."),
            OpenApiParameter(
                "level", OpenApiTypes.STR, enum=list(LEVELS), description="The lowest level shown."
            ),
            OpenApiParameter("after", OpenApiTypes.STR, description="The cursor: entries after this id."),
            OpenApiParameter("limit", OpenApiTypes.INT, description=f"1-{_LIMIT_MAX}, default 100."),
            OpenApiParameter("format", OpenApiTypes.STR, enum=["json", "ndjson"]),
        ],
        responses={
            200: PageLogPageOutput,
            (200, "application/x-ndjson"): OpenApiResponse(
                PageLogEntryOutput, description="format=ndjson: one entry a line."
            ),
            **errors(404),
        },
    )
    def get(self, request: Request, session_id: str) -> Response | HttpResponse:
        session = selectors.session_get(account=request_account(request), session_id=session_id)
        params = request.query_params
        filters = log_filter_parse(
            kinds=params.getlist("type") + params.getlist("kind"),
            level=params.get("level"),
            after=params.get("after"),
        )
        fmt = params.get("format", "json")
        if fmt == "ndjson":
            # Bounded by SESSION_LOGS_MAX_BYTES: one body (the ASGI handler would buffer a
            # synchronous stream whole anyway).
            response = HttpResponse(
                b"".join(page_logs_ndjson(session=session, filters=filters)),
                content_type="application/x-ndjson",
            )
            response["Content-Disposition"] = f'attachment; filename="{session.pk}-logs.ndjson"'
            return response
        if fmt != "json":
            raise InvalidInput("format must be json or ndjson.", code="invalid_format")
        raw_limit = params.get("limit", "100")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= _LIMIT_MAX:
            raise InvalidInput(f"limit must be 1-{_LIMIT_MAX}.", code="invalid_limit")
        page = page_logs_page(session=session, filters=filters, limit=int(raw_limit))
        return Response(PageLogPageOutput(page).data)
