"""The OpenAPI description of the batch jobs API (views in jobs/api/views.py).

These serializers only describe what the views build by hand (jobs/api/serializers.py,
`job_output` and `item_output`); tests/api/test_openapi.py and the schemathesis run check that
the two agree.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers

from jobs.api.serializers import MAX_ITEMS_PER_REQUEST, WEBHOOK_EVENTS
from jobs.models import ItemStatus, JobEndedReason, JobStatus
from jobs.selectors import JOB_LIST_STATUSES, RESULT_STATUSES
from project.openapi import PAGE_PARAMETERS, ErrorBody, error_response, errors, page_of
from sessions.action_specs import SCRAPE_FORMATS

JOBS = "jobs"

JOB_ID = OpenApiParameter(
    "job_id", OpenApiTypes.STR, OpenApiParameter.PATH, description="The job id, `job_...`."
)


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorBody, description=description)


_SCRAPE = inline_serializer(
    "JobScrape",
    {
        "schema": serializers.JSONField(
            required=False,
            allow_null=True,
            help_text="The `scrape` action's schema: `{field: selector}` or `{fields: {...}}`.",
        ),
        "selector": serializers.CharField(required=False, allow_null=True),
        "format": serializers.ChoiceField(choices=list(SCRAPE_FORMATS), required=False),
    },
)
_ITEM = inline_serializer(
    "JobItemInput",
    {
        "url": serializers.CharField(),
        "key": serializers.CharField(
            required=False, max_length=2048, help_text="De-duplicates; default the normalised URL."
        ),
        "metadata": serializers.JSONField(required=False, help_text="Returned with the result."),
    },
)
_WEBHOOK_IN = inline_serializer(
    "JobWebhookInput",
    {
        "url": serializers.CharField(max_length=2048),
        "secret": serializers.CharField(
            required=False, max_length=200, help_text="Signs each body: `X-Browserfleet-Signature`."
        ),
        "events": serializers.ListField(
            child=serializers.ChoiceField(choices=list(WEBHOOK_EVENTS)), required=False, min_length=1
        ),
    },
)
JobCreate = inline_serializer(
    "JobCreateRequest",
    {
        "urls": serializers.ListField(
            child=serializers.CharField(),
            required=False,
            min_length=1,
            max_length=MAX_ITEMS_PER_REQUEST,
            help_text="http(s) URLs. Give either `urls` or `items`.",
        ),
        "items": serializers.ListField(
            child=_ITEM, required=False, min_length=1, max_length=MAX_ITEMS_PER_REQUEST
        ),
        "scrape": _SCRAPE,
        "screenshot": serializers.BooleanField(required=False, default=False),
        "wait_for": inline_serializer(
            "JobWaitFor",
            {
                "selector": serializers.CharField(max_length=1000),
                "timeout_ms": serializers.IntegerField(required=False, min_value=0, max_value=60_000),
            },
            required=False,
            allow_null=True,
        ),
        "page_timeout_seconds": serializers.IntegerField(
            required=False, min_value=1, max_value=120, default=30
        ),
        "max_concurrency": serializers.IntegerField(
            required=False, min_value=1, max_value=100, default=2, help_text="Capped by the plan."
        ),
        "per_domain_concurrency": serializers.IntegerField(
            required=False, min_value=1, max_value=100, default=2
        ),
        "max_retries": serializers.IntegerField(required=False, min_value=0, max_value=10, default=2),
        "max_credits": serializers.IntegerField(required=False, min_value=1, allow_null=True),
        "ignore_invalid_urls": serializers.BooleanField(required=False, default=False),
        "webhook": _WEBHOOK_IN,
        "environment_id": serializers.CharField(
            required=False,
            help_text="A saved browser state (a persistent session's id) every job browser starts "
            "with, read-only (docs/saved-state.md). 404 `environment_not_found` if unknown.",
        ),
    },
)

_COUNTS = inline_serializer(
    "JobCounts",
    {
        name: serializers.IntegerField()
        for name in ("queued", "running", "succeeded", "failed", "skipped", "cancelled")
    },
)
_JOB_FIELDS = {
    "id": serializers.CharField(),
    "object": serializers.ChoiceField(choices=["job"]),
    "status": serializers.ChoiceField(choices=JobStatus.values),
    "ended_reason": serializers.ChoiceField(choices=JobEndedReason.values, allow_null=True),
    "error": serializers.CharField(allow_null=True),
    "total": serializers.IntegerField(),
    "done": serializers.IntegerField(help_text="Succeeded plus failed."),
    "counts": _COUNTS,
    "credits_used": serializers.IntegerField(),
    "credits_reserved": serializers.IntegerField(help_text="Held for the pages still to come."),
    "page_price": serializers.IntegerField(),
    "max_credits": serializers.IntegerField(allow_null=True),
    "max_concurrency": serializers.IntegerField(),
    "per_domain_concurrency": serializers.IntegerField(),
    "max_retries": serializers.IntegerField(),
    "pages_per_minute": serializers.FloatField(allow_null=True),
    "eta_seconds": serializers.IntegerField(allow_null=True),
    "created_at": serializers.CharField(),
    "started_at": serializers.CharField(allow_null=True),
    "finished_at": serializers.CharField(allow_null=True),
    "expires_at": serializers.CharField(allow_null=True),
    # The first 100 skipped URLs (their first 200 characters); null in GET /v1/jobs lists.
    "invalid_urls": inline_serializer(
        "JobInvalidUrl",
        {
            "url": serializers.CharField(),
            "index": serializers.IntegerField(),
            "reason": serializers.CharField(),
        },
        many=True,
        allow_null=True,
    ),
    "duplicate_urls": serializers.ListField(child=serializers.CharField(), allow_null=True),
    "webhook": inline_serializer(
        "JobWebhook",
        {
            "url": serializers.CharField(),
            "events": serializers.ListField(child=serializers.ChoiceField(choices=list(WEBHOOK_EVENTS))),
            "failures": serializers.IntegerField(),
            "last_error": serializers.CharField(allow_null=True),
        },
        allow_null=True,
    ),
}
_ITEM_ERROR = inline_serializer(
    "JobItemError", {"code": serializers.CharField(), "message": serializers.CharField()}, allow_null=True
)
_RESULT_FIELDS = {
    "item_id": serializers.IntegerField(),
    "key": serializers.CharField(),
    "url": serializers.CharField(),
    "metadata": serializers.JSONField(allow_null=True),
    "final_url": serializers.CharField(allow_null=True),
    "status": serializers.ChoiceField(choices=ItemStatus.values),
    "http_status": serializers.IntegerField(allow_null=True),
    "data": serializers.JSONField(allow_null=True, help_text="The scrape result."),
    "screenshot_url": serializers.CharField(allow_null=True),
    "error": _ITEM_ERROR,
    "attempts": serializers.IntegerField(),
    "credits": serializers.IntegerField(),
    "finished_at": serializers.CharField(allow_null=True),
}


# Named serializer classes (one component each, used with and without many=True).
_JobSerializer = type("Job", (serializers.Serializer,), dict(_JOB_FIELDS))
_ResultSerializer = type("JobResult", (serializers.Serializer,), dict(_RESULT_FIELDS))


def _job(**kwargs: Any) -> Any:
    return _JobSerializer(**kwargs)


def _result(**kwargs: Any) -> Any:
    return _ResultSerializer(**kwargs)


_JOB_EXAMPLE = OpenApiExample(
    "a job",
    value={
        "id": "job_0a1b2c3d4e5f60718293a4b5",
        "object": "job",
        "status": "running",
        "ended_reason": None,
        "error": None,
        "total": 3,
        "done": 1,
        "counts": {"queued": 1, "running": 1, "succeeded": 1, "failed": 0, "skipped": 0, "cancelled": 0},
        "credits_used": 5,
        "credits_reserved": 10,
        "page_price": 5,
        "max_credits": None,
        "max_concurrency": 2,
        "per_domain_concurrency": 2,
        "max_retries": 2,
        "pages_per_minute": 30.0,
        "eta_seconds": 4,
        "created_at": "2026-11-01T12:00:00Z",
        "started_at": "2026-11-01T12:00:01Z",
        "finished_at": None,
        "expires_at": None,
        "invalid_urls": [],
        "duplicate_urls": [],
        "webhook": None,
    },
    response_only=True,
)

job_list_schema = extend_schema(
    tags=[JOBS],
    operation_id="jobs_list",
    summary="The account's jobs, newest first",
    parameters=[
        OpenApiParameter(
            "status", OpenApiTypes.STR, enum=sorted(JOB_LIST_STATUSES), description="`active`: not ended yet."
        ),
        *PAGE_PARAMETERS,
    ],
    responses={200: page_of("JobPage", _job(many=True)), **errors()},
)
job_create_schema = extend_schema(
    tags=[JOBS],
    operation_id="jobs_create",
    summary="Submit a batch scraping job",
    description=(
        "Creates the job and its pages and holds its maximum cost (pages x price, capped by "
        "`max_credits`); 402 and nothing created when the balance does not cover it. With an "
        "`Idempotency-Key` header, the same key and body answer 200 with the job it created; the "
        "same key with another body is 409 `idempotency_key_reused`."
    ),
    parameters=[
        OpenApiParameter(
            "Idempotency-Key",
            OpenApiTypes.STR,
            OpenApiParameter.HEADER,
            description="At most 200 characters.",
        )
    ],
    request=JobCreate,
    responses={
        201: OpenApiResponse(_job(), description="The job was created."),
        200: OpenApiResponse(_job(), description="The job this Idempotency-Key created before."),
        409: _error("This Idempotency-Key was used with another body; final: `x-should-retry: false`."),
        **errors(402, 404, 413),
    },
    examples=[
        OpenApiExample(
            "urls and a schema",
            value={
                "urls": ["https://example.com/a", "https://example.com/b"],
                "scrape": {"schema": {"title": "h1", "price": ".price"}},
                "max_concurrency": 2,
            },
            request_only=True,
        ),
        _JOB_EXAMPLE,
    ],
)
job_retrieve_schema = extend_schema(
    tags=[JOBS],
    operation_id="jobs_retrieve",
    summary="A job: status, counts, credits, progress",
    parameters=[JOB_ID],
    responses={200: _job(), **errors(404)},
    examples=[_JOB_EXAMPLE],
)
job_cancel_schema = extend_schema(
    tags=[JOBS],
    operation_id="jobs_cancel",
    summary="Cancel a job (queued pages at once, pages in flight within their timeout)",
    parameters=[JOB_ID],
    request=None,
    responses={
        202: OpenApiResponse(_job(), description="Cancelling (or cancelled): results so far stay."),
        409: _error("The job has already ended (`job_finished`); final: `x-should-retry: false`."),
        **errors(404),
    },
)
job_results_schema = extend_schema(
    tags=[JOBS],
    operation_id="jobs_results",
    summary="A job's results so far: JSON pages, or the whole set as JSON Lines or CSV",
    description=(
        "`format=json` (default) answers one cursor page; `jsonl` and `csv` stream every finished "
        "page (CSV: one column per schema field in schema order, nested values as JSON text). "
        "Partial results are readable at any time."
    ),
    parameters=[
        JOB_ID,
        OpenApiParameter(
            "format", OpenApiTypes.STR, enum=["json", "jsonl", "csv"], description="Default json."
        ),
        OpenApiParameter("status", OpenApiTypes.STR, enum=sorted(RESULT_STATUSES)),
        OpenApiParameter(
            "cursor", OpenApiTypes.STR, description="`next_cursor` of the previous page (json)."
        ),
        OpenApiParameter("limit", OpenApiTypes.INT, description="1-1000, default 100 (json)."),
    ],
    responses={
        (200, "application/json"): OpenApiResponse(
            inline_serializer(
                "JobResultsPage",
                {
                    "job_id": serializers.CharField(),
                    "status": serializers.ChoiceField(choices=JobStatus.values),
                    "results": _result(many=True),
                    "next_cursor": serializers.CharField(allow_null=True),
                },
            ),
            description="format=json: one page.",
        ),
        (200, "application/x-ndjson"): OpenApiResponse(
            _result(), description="format=jsonl: one result object per line."
        ),
        (200, "text/csv"): OpenApiResponse(
            OpenApiTypes.STR, description="format=csv: a header line, then one row per page."
        ),
        **errors(404),
    },
)
job_screenshot_schema = extend_schema(
    tags=[JOBS],
    operation_id="job_screenshot_retrieve",
    summary="A job page's screenshot (the unguessable, expiring URL is the credential)",
    auth=[],
    responses={
        (200, "image/png"): OpenApiResponse(OpenApiTypes.BINARY, description="The PNG."),
        404: error_response(404, "Unknown or expired."),
    },
)
