from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from rest_framework import serializers

from jobs.models import Job, JobItem
from jobs.selectors import JobProgress
from project.exceptions import InvalidInput
from project.fields import StrictBooleanField, StrictCharField, StrictIntegerField, iso
from sessions.action_specs import normalize_action
from sessions.url_policy import lookup_needed, navigation_url, resolve_hosts

MAX_ITEMS_PER_REQUEST = 100_000
# The most browser time one page may take over all its tries.
MAX_SECONDS_PER_PAGE = 600
# An item's metadata is stored and returned with each of its results: small, by design.
ITEM_METADATA_MAX_BYTES = 4096
WEBHOOK_EVENTS = ("page", "page_failed", "completed", "cancelled")


class WaitForInput(serializers.Serializer[Any]):
    selector = StrictCharField(max_length=1000)
    timeout_ms = StrictIntegerField(min_value=0, max_value=60_000, required=False, default=10_000)


class WebhookInput(serializers.Serializer[Any]):
    url = StrictCharField(max_length=2048)
    secret = StrictCharField(max_length=200, required=False, allow_blank=True, default="")
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=WEBHOOK_EVENTS), required=False, allow_empty=False
    )

    def validate_url(self, value: str) -> str:
        # Deliveries go where browsers may go: the same private-network policy applies, its host
        # looked up with the submit's deadline (a never-answering DNS server holds no thread).
        host = lookup_needed(value)
        resolved = (
            resolve_hosts(
                [host],
                concurrency=1,
                deadline_seconds=settings.JOB_SUBMIT_RESOLVE_SECONDS,
            )
            if host
            else None
        )
        try:
            return navigation_url(value, resolved=resolved)
        except InvalidInput as exc:  # named as the field: `webhook.url: ...`
            raise serializers.ValidationError(exc.detail, code=exc.code) from None


class JobCreateInput(serializers.Serializer[Any]):
    # Lists are checked by hand: a field per URL would cost seconds on 100,000 URLs.
    urls = serializers.JSONField(required=False)
    items = serializers.JSONField(required=False)
    scrape = serializers.JSONField(required=False)
    screenshot = StrictBooleanField(required=False, default=False)
    wait_for = WaitForInput(required=False, allow_null=True, default=None)
    page_timeout_seconds = StrictIntegerField(min_value=1, max_value=120, required=False, default=30)
    max_concurrency = StrictIntegerField(min_value=1, max_value=100, required=False, default=2)
    per_domain_concurrency = StrictIntegerField(min_value=1, max_value=100, required=False, default=2)
    max_retries = StrictIntegerField(min_value=0, max_value=10, required=False, default=2)
    max_credits = StrictIntegerField(min_value=1, required=False, allow_null=True, default=None)
    ignore_invalid_urls = StrictBooleanField(required=False, default=False)
    webhook = WebhookInput(required=False, allow_null=True, default=None)
    # A saved browser state (a persistent session's id) every job browser starts with, read-only.
    environment_id = StrictCharField(required=False, max_length=100, allow_blank=True, default="")

    def validate_scrape(self, value: Any) -> dict[str, Any]:
        # The same body as the `scrape` action, validated by the same code.
        action = normalize_action("scrape", value if value is not None else {})
        action.pop("type", None)
        return {key: action[key] for key in ("schema", "selector", "format") if key in action}

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        _refuse_nul(attrs)
        timeout, retries = attrs.get("page_timeout_seconds", 30), attrs.get("max_retries", 2)
        if timeout * (retries + 1) > MAX_SECONDS_PER_PAGE:
            raise serializers.ValidationError(
                {
                    "max_retries": "(max_retries + 1) x page_timeout_seconds is at most "
                    f"{MAX_SECONDS_PER_PAGE} seconds a page; this job asks {timeout * (retries + 1)}."
                }
            )
        wait_for = attrs.get("wait_for")
        if wait_for and wait_for.get("timeout_ms", 10_000) > timeout * 1000:
            raise serializers.ValidationError(
                {"wait_for": "timeout_ms may not be longer than page_timeout_seconds."}
            )
        urls, items = attrs.pop("urls", None), attrs.pop("items", None)
        if (urls is None) == (items is None):
            raise serializers.ValidationError("Give either `urls` or `items`.")
        if urls is not None:
            if not isinstance(urls, list) or not urls:
                raise serializers.ValidationError({"urls": "must be a non-empty list of URLs."})
            items = [{"url": url} for url in urls]
        else:
            if not isinstance(items, list) or not items:
                raise serializers.ValidationError({"items": "must be a non-empty list of objects."})
            for index, item in enumerate(items):
                if not isinstance(item, dict) or "url" not in item:
                    raise serializers.ValidationError({"items": f"item {index} needs a `url`."})
                unknown = set(item) - {"url", "key", "metadata"}
                if unknown:
                    raise serializers.ValidationError(
                        {"items": f"item {index}: unknown fields {sorted(unknown)}."}
                    )
                key = item.get("key")
                if key is not None and (not isinstance(key, str) or not 0 < len(key.encode()) <= 2048):
                    raise serializers.ValidationError(
                        {"items": f"item {index}: key must be a string of 1-2048 bytes (UTF-8)."}
                    )
                if "metadata" in item and _json_bytes(item["metadata"]) > ITEM_METADATA_MAX_BYTES:
                    raise serializers.ValidationError(
                        {
                            "items": f"item {index}: metadata is at most {ITEM_METADATA_MAX_BYTES} bytes"
                            " of JSON."
                        }
                    )
        if len(items) > MAX_ITEMS_PER_REQUEST:
            raise serializers.ValidationError(f"A job holds at most {MAX_ITEMS_PER_REQUEST} URLs.")
        attrs["items"] = items
        if "scrape" not in attrs:
            attrs["scrape"] = self.validate_scrape({})
        return attrs


def _json_bytes(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def _refuse_nul(value: Any) -> None:
    """PostgreSQL text and jsonb cannot hold U+0000: refuse it anywhere in the body (400, not 500)."""
    stack = [value]
    while stack:
        current = stack.pop()
        if isinstance(current, str):
            if "\x00" in current:
                raise serializers.ValidationError("Text may not contain the NUL character (U+0000).")
        elif isinstance(current, dict):
            stack.extend(current.keys())
            stack.extend(current.values())
        elif isinstance(current, list):
            stack.extend(current)


def job_output(job: Job, progress: JobProgress, *, listed: bool = False) -> dict[str, Any]:
    """A job; `listed` (in GET /v1/jobs) without the skipped URLs, which only the job's own
    page carries (their columns are not even read for a list)."""
    counts = progress.counts
    return {
        "id": job.pk,
        "object": "job",
        "status": job.status,
        "ended_reason": job.ended_reason or None,
        "error": job.error or None,
        "total": job.total,
        "done": progress.done,
        "counts": {
            name: counts[name]
            for name in ("queued", "running", "succeeded", "failed", "skipped", "cancelled")
        },
        "credits_used": job.credits_used,
        "credits_reserved": job.credits_held,
        "page_price": job.page_price,
        "max_credits": job.max_credits,
        "max_concurrency": job.max_concurrency,
        "per_domain_concurrency": job.per_domain_concurrency,
        "max_retries": job.max_retries,
        "pages_per_minute": progress.pages_per_minute,
        "eta_seconds": progress.eta_seconds,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "expires_at": iso(job.expires_at),
        "invalid_urls": None if listed else job.invalid_urls,
        "duplicate_urls": None if listed else job.duplicate_urls,
        "webhook": (
            {
                "url": job.webhook["url"],
                "events": job.webhook.get("events") or list(WEBHOOK_EVENTS),
                "failures": progress.webhook_failures,
                "last_error": progress.webhook_last_error or None,
            }
            if job.webhook
            else None
        ),
    }


def item_output(item: JobItem, screenshot_url: str | None) -> dict[str, Any]:
    return {
        "item_id": item.pk,
        "key": item.key,
        "url": item.url,
        "metadata": item.metadata,
        "final_url": item.final_url or None,
        "status": item.status,
        "http_status": item.http_status,
        "data": item.data,
        "screenshot_url": screenshot_url,
        "error": {"code": item.error_code, "message": item.error_message} if item.error_code else None,
        "attempts": item.attempts,
        "credits": item.credits,
        "finished_at": iso(item.finished_at),
    }
