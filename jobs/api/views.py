from __future__ import annotations

from functools import partial
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import FileResponse, StreamingHttpResponse
from django.urls import reverse
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import request_account, request_key
from accounts.inflight import inflight_slot
from jobs import selectors, services
from jobs.api import exports, schema
from jobs.api.serializers import JobCreateInput, items_output, job_output
from jobs.models import Job, JobItem
from jobs.screenshots import job_screenshot_path_of, job_screenshot_token
from project.exceptions import InvalidInput, NotFound, PayloadTooLarge
from project.pagination import paginate


def _job_body(job: Job, *, listed: bool = False) -> dict[str, Any]:
    return job_output(job, selectors.job_progress(job=job), listed=listed)


class JobListCreateView(APIView):
    @schema.job_list_schema
    def get(self, request: Request) -> Response:
        jobs = selectors.job_list(
            account=request_account(request), status=request.query_params.get("status") or None
        )
        page = paginate(request, jobs)
        return Response({"results": [_job_body(job, listed=True) for job in page.pop("items")], **page})

    @schema.job_create_schema
    def post(self, request: Request) -> Response:
        key = request.headers.get("Idempotency-Key", "").strip()
        if len(key) > 200:
            raise InvalidInput("Idempotency-Key is at most 200 characters.")
        account = request_account(request)
        # Cheap refusals first, before the body is parsed or any host looked up (issue 19 item 2).
        try:
            body_bytes = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            body_bytes = 0
        try:
            plan = services.job_submit_plan(account=account, body_bytes=body_bytes)
        except PayloadTooLarge:
            # Read (never parse) what the client is still sending: closing on an unread body
            # resets the connection, and the client would never see this answer.
            while request._request.read(1 << 16):
                pass
            raise
        # A submit holds a web thread while its hosts are looked up: it counts in the cap.
        with inflight_slot(account=account, wait_seconds=settings.JOB_SUBMIT_RESOLVE_SECONDS):
            services.job_submit_count_check(plan=plan, body=request.data)
            serializer = JobCreateInput(data=request.data)
            serializer.is_valid(raise_exception=True)
            data = dict(serializer.validated_data)
            job, created = services.job_submit(
                account=account,
                spec=services.JobSpec(**data),
                idempotency_key=key,
                request_hash=services.request_fingerprint(request.data) if key else "",
                api_key_id=api_key.id if (api_key := request_key(request)) else None,
            )
        return Response(_job_body(job), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class JobDetailView(APIView):
    @schema.job_retrieve_schema
    def get(self, request: Request, job_id: str) -> Response:
        return Response(_job_body(selectors.job_get(account=request_account(request), job_id=job_id)))


class JobCancelView(APIView):
    @schema.job_cancel_schema
    def post(self, request: Request, job_id: str) -> Response:
        job = services.job_cancel(job=selectors.job_get(account=request_account(request), job_id=job_id))
        return Response(_job_body(job), status=status.HTTP_202_ACCEPTED)


class _PlainJsonNegotiation:
    """`?format=` names the export here, not a DRF renderer."""

    def perform_content_negotiation(self, request: Request, force: bool = False) -> tuple[Any, str]:
        renderer = JSONRenderer()
        return renderer, renderer.media_type


def _screenshot_url(request: Request, item: JobItem) -> str | None:
    if not item.screenshot:
        return None
    token = job_screenshot_token(item.screenshot)
    return request.build_absolute_uri(reverse("job-screenshot", kwargs={"token": token}))


class JobResultsView(_PlainJsonNegotiation, APIView):
    """?format=json (cursor pages) | jsonl | csv (the whole set, streamed) &status= &cursor= &limit="""

    @schema.job_results_schema
    def get(self, request: Request, job_id: str) -> Any:
        job = selectors.job_get(account=request_account(request), job_id=job_id)
        fmt = request.query_params.get("format", "json")
        item_status = request.query_params.get("status") or None
        if fmt == "json":
            try:
                limit = int(request.query_params.get("limit", "100"))
            except ValueError:
                raise InvalidInput("limit must be an integer.") from None
            if not 1 <= limit <= 1000:
                raise InvalidInput("limit must be 1-1000.")
            items, next_cursor = selectors.job_results_page(
                job=job, status=item_status, cursor=request.query_params.get("cursor"), limit=limit
            )
            return Response(
                {
                    "job_id": job.pk,
                    "status": job.status,
                    "results": items_output(items, lambda item: _screenshot_url(request, item)),
                    "next_cursor": next_cursor,
                }
            )
        if fmt not in ("jsonl", "csv"):
            raise InvalidInput("format must be json, jsonl or csv.")
        rows = selectors.job_results_iter(job=job, status=item_status)
        shot = partial(_screenshot_url, request)
        if fmt == "jsonl":
            response = StreamingHttpResponse(
                exports.jsonl_lines(rows, shot), content_type="application/x-ndjson"
            )
        else:
            columns = job.spec.get("columns") or selectors.schema_columns(job.spec.get("scrape") or {})
            response = StreamingHttpResponse(exports.csv_lines(rows, columns, shot), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="{job.pk}.{fmt}"'
        return response


class JobScreenshotView(APIView):
    """The URL itself is the credential: random, signed and expiring (as action screenshots)."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    @schema.job_screenshot_schema
    def get(self, request: Request, token: str) -> FileResponse:
        path = job_screenshot_path_of(token, max_age=settings.SCREENSHOT_URL_TTL_SECONDS)
        if path is None or not default_storage.exists(path):
            raise NotFound(
                "This screenshot does not exist or its URL has expired.", code="screenshot_not_found"
            )
        response = FileResponse(default_storage.open(path, "rb"), content_type="image/png")
        response["Cache-Control"] = "private, max-age=300"
        return response
