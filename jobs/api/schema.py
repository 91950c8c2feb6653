"""The OpenAPI description of the batch jobs API's operations (views in jobs/api/views.py).

Answers are declared once, by the serializers that render them (jobs/api/serializers.py:
JobOutput, JobItemOutput); what is left here is per operation, and the create body.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers

from jobs.api.serializers import JobCreateInput, JobItemOutput, JobOutput
from jobs.models import JobStatus
from jobs.selectors import JOB_LIST_STATUSES, RESULT_STATUSES
from project.openapi import PAGE_PARAMETERS, ErrorBody, error_response, errors, page_of

JOBS = "jobs"

JOB_ID = OpenApiParameter(
    "job_id", OpenApiTypes.STR, OpenApiParameter.PATH, description="The job id, `job_...`."
)


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorBody, description=description)


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
    responses={200: page_of("JobPage", JobOutput(many=True)), **errors()},
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
    request=JobCreateInput,
    responses={
        201: OpenApiResponse(JobOutput, description="The job was created."),
        200: OpenApiResponse(JobOutput, description="The job this Idempotency-Key created before."),
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
    responses={200: JobOutput, **errors(404)},
    examples=[_JOB_EXAMPLE],
)
job_cancel_schema = extend_schema(
    tags=[JOBS],
    operation_id="jobs_cancel",
    summary="Cancel a job (queued pages at once, pages in flight within their timeout)",
    parameters=[JOB_ID],
    request=None,
    responses={
        202: OpenApiResponse(JobOutput, description="Cancelling (or cancelled): results so far stay."),
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
                    "results": JobItemOutput(many=True),
                    "next_cursor": serializers.CharField(allow_null=True),
                },
            ),
            description="format=json: one page.",
        ),
        (200, "application/x-ndjson"): OpenApiResponse(
            JobItemOutput, description="format=jsonl: one result object per line."
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
