from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from jobs.models import ItemStatus, Job, JobEndedReason, JobItem, JobStatus
from jobs.selectors import JobProgress
from project.exceptions import InvalidInput
from project.fields import IsoDateTimeField, StrictBooleanField, StrictCharField, StrictIntegerField
from sessions.action_specs import SCRAPE_FORMATS, normalize_action
from sessions.location import BROWSER_FLAVOURS, CHROMIUM
from sessions.proxies import InvalidProxy, proxies_check
from sessions.url_policy import lookup_needed, navigation_url, resolve_hosts

MAX_ITEMS_PER_REQUEST = 100_000
# The most browser time one page may take over all its tries.
MAX_SECONDS_PER_PAGE = 600
# An item's metadata is stored and returned with each of its results: small, by design.
ITEM_METADATA_MAX_BYTES = 4096
WEBHOOK_EVENTS = ("page", "page_failed", "completed", "cancelled")


@extend_schema_serializer(component_name="JobWaitFor")
class WaitForInput(serializers.Serializer[Any]):
    selector = StrictCharField(max_length=1000)
    timeout_ms = StrictIntegerField(min_value=0, max_value=60_000, required=False, default=10_000)


@extend_schema_serializer(component_name="JobWebhookInput")
class WebhookInput(serializers.Serializer[Any]):
    url = StrictCharField(max_length=2048)
    secret = StrictCharField(
        max_length=200,
        required=False,
        allow_blank=True,
        default="",
        help_text="Signs each body: `X-Browserfleet-Signature`.",
    )
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


# How the hand-checked JSON fields are documented (drf-spectacular reads these; the checks are
# in JobCreateInput.validate, where a field per URL would cost seconds on 100,000 URLs).
@extend_schema_serializer(component_name="JobItemInput")
class _JobItemDoc(serializers.Serializer[Any]):
    url = serializers.CharField()
    key = serializers.CharField(
        required=False, max_length=2048, help_text="De-duplicates; default the normalised URL."
    )
    metadata = serializers.JSONField(required=False, help_text="Returned with the result.")


@extend_schema_serializer(component_name="JobScrape")
class _JobScrapeDoc(serializers.Serializer[Any]):
    schema = serializers.JSONField(
        required=False,
        allow_null=True,
        help_text="The `scrape` action's schema: `{field: selector}` or `{fields: {...}}`.",
    )
    selector = serializers.CharField(required=False, allow_null=True)
    format = serializers.ChoiceField(choices=list(SCRAPE_FORMATS), required=False)


class _UncheckedList(serializers.ListField):
    """A list documented with its child and bounds but taken as it comes: JobCreateInput.validate
    checks it by hand (a field per URL would cost seconds on 100,000 URLs)."""

    def to_internal_value(self, data: Any) -> Any:
        return data

    def run_validators(self, value: Any) -> None:
        pass


@extend_schema_field(_JobScrapeDoc)
class _ScrapeField(serializers.JSONField):
    pass


@extend_schema_serializer(component_name="JobCreate")
class JobCreateInput(serializers.Serializer[Any]):
    urls = _UncheckedList(
        child=serializers.CharField(),
        min_length=1,
        max_length=MAX_ITEMS_PER_REQUEST,
        required=False,
        help_text="http(s) URLs. Give either `urls` or `items`.",
    )
    items = _UncheckedList(
        child=_JobItemDoc(), min_length=1, max_length=MAX_ITEMS_PER_REQUEST, required=False
    )
    scrape = _ScrapeField(required=False)
    screenshot = StrictBooleanField(required=False, default=False)
    wait_for = WaitForInput(required=False, allow_null=True, default=None)
    page_timeout_seconds = StrictIntegerField(min_value=1, max_value=120, required=False, default=30)
    max_concurrency = StrictIntegerField(
        min_value=1, max_value=100, required=False, default=2, help_text="Capped by the plan."
    )
    per_domain_concurrency = StrictIntegerField(min_value=1, max_value=100, required=False, default=2)
    max_retries = StrictIntegerField(min_value=0, max_value=10, required=False, default=2)
    max_credits = StrictIntegerField(min_value=1, required=False, allow_null=True, default=None)
    ignore_invalid_urls = StrictBooleanField(required=False, default=False)
    webhook = WebhookInput(required=False, allow_null=True, default=None)
    # A saved browser state (a persistent session's id) every job browser starts with, read-only.
    environment_id = StrictCharField(required=False, max_length=100, allow_blank=True, default="")
    # Upstream proxies for every browser of the job (docs/proxies.md), as at a session's create.
    use_advanced_proxy = StrictBooleanField(
        required=False,
        default=False,
        help_text="Every page through the operator's proxy pool; its bytes are charged at `proxy_mb`.",
    )
    proxy_country = StrictCharField(
        required=False,
        max_length=32,
        allow_blank=True,
        default="",
        help_text="Extension: with use_advanced_proxy, a pool member tagged with this (e.g. `de`).",
    )
    proxies = serializers.JSONField(
        required=False,
        default=None,
        help_text=(
            "Extension: bring-your-own upstream proxies, `[{server, username?, password?, "
            'domain_pattern?}]` (`server` `http://host:port`, `socks5://host:port` or `"direct"`), '
            "the first rule whose `domain_pattern` matches a page's host wins. Credentials are "
            "stored encrypted and never echoed. A proxy on a private address is 400 `blocked_address`."
        ),
    )
    browser = serializers.ChoiceField(
        choices=list(BROWSER_FLAVOURS),
        required=False,
        default="",
        help_text=(
            "The job browsers' flavour: `headless_shell` (Chromium's headless shell, the default: "
            "`JOB_BROWSER_FLAVOUR`) or `chromium` (full Chromium)."
        ),
    )

    def validate_proxies(self, value: Any) -> list[dict[str, str]] | None:
        return None if value is None else proxies_check(value)

    def validate_scrape(self, value: Any) -> dict[str, Any]:
        # The same body as the `scrape` action, validated by the same code.
        action = normalize_action("scrape", value if value is not None else {})
        action.pop("type", None)
        return {key: action[key] for key in ("schema", "selector", "format") if key in action}

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("proxies") and attrs.get("use_advanced_proxy"):
            raise InvalidProxy("Give either use_advanced_proxy or proxies, not both.")
        if attrs.get("proxy_country") and not attrs.get("use_advanced_proxy"):
            raise InvalidProxy("proxy_country picks an advanced proxy: it needs use_advanced_proxy: true.")
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


# The answers, each declared once: these serializers render them and drf-spectacular documents
# them (jobs/api/schema.py only decorates the views).

_COUNTED = ("queued", "running", "succeeded", "failed", "skipped", "cancelled")


@extend_schema_serializer(component_name="JobCounts")
class JobCountsOutput(serializers.Serializer[Any]):
    queued = serializers.IntegerField()
    running = serializers.IntegerField()
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField()
    skipped = serializers.IntegerField()
    cancelled = serializers.IntegerField()


@extend_schema_serializer(component_name="JobInvalidUrl")
class JobInvalidUrlOutput(serializers.Serializer[Any]):
    url = serializers.CharField(help_text="Its first 200 characters.")
    index = serializers.IntegerField()
    reason = serializers.CharField()


@extend_schema_serializer(component_name="JobWebhook")
class JobWebhookOutput(serializers.Serializer[Any]):
    url = serializers.CharField()
    events = serializers.ListField(child=serializers.ChoiceField(choices=list(WEBHOOK_EVENTS)))
    failures = serializers.IntegerField()
    last_error = serializers.CharField(allow_null=True)


@extend_schema_serializer(component_name="Job")
class JobOutput(serializers.Serializer[Job]):
    # Renders a Job; its progress (jobs.selectors.JobProgress) comes in the context.
    id = serializers.CharField()
    object = serializers.SerializerMethodField()
    status = serializers.ChoiceField(choices=JobStatus.values)
    ended_reason = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()
    total = serializers.IntegerField()
    done = serializers.SerializerMethodField(help_text="Succeeded plus failed.")
    counts = serializers.SerializerMethodField()
    credits_used = serializers.IntegerField()
    credits_reserved = serializers.IntegerField(
        source="credits_held", help_text="Held for the pages still to come."
    )
    page_price = serializers.IntegerField()
    max_credits = serializers.IntegerField(allow_null=True)
    max_concurrency = serializers.IntegerField()
    per_domain_concurrency = serializers.IntegerField()
    max_retries = serializers.IntegerField()
    browser = serializers.SerializerMethodField()
    pages_per_minute = serializers.SerializerMethodField()
    eta_seconds = serializers.SerializerMethodField()
    created_at = IsoDateTimeField()
    started_at = IsoDateTimeField(allow_null=True)
    finished_at = IsoDateTimeField(allow_null=True)
    expires_at = IsoDateTimeField(allow_null=True)
    # The first 100 skipped URLs (their first 200 characters); null in GET /v1/jobs lists, which
    # do not even read their columns.
    invalid_urls = serializers.SerializerMethodField()
    duplicate_urls = serializers.SerializerMethodField()
    webhook = serializers.SerializerMethodField()
    use_advanced_proxy = serializers.SerializerMethodField()
    proxy_country = serializers.SerializerMethodField()
    proxies = serializers.SerializerMethodField(
        help_text="The job's own proxy rules as given, without their credentials; null without."
    )
    proxy_bytes = serializers.IntegerField(
        help_text="Bytes (both ways) its browsers moved through the operator's proxy pool, as charged so far."
    )
    proxy_mb = serializers.IntegerField(
        source="proxy_billed_mb", help_text="Started MB charged at the `proxy_mb` price so far."
    )

    def get_use_advanced_proxy(self, job: Job) -> bool:
        return bool(job.spec.get("use_advanced_proxy"))

    def get_proxy_country(self, job: Job) -> str | None:
        return job.spec.get("proxy_country") or None

    @extend_schema_field(serializers.ListField(child=serializers.DictField(), allow_null=True))
    def get_proxies(self, job: Job) -> list[dict[str, Any]] | None:
        return job.spec.get("proxies") or None

    def _progress(self) -> JobProgress:
        progress: JobProgress = self.context["progress"]
        return progress

    @extend_schema_field(serializers.ChoiceField(choices=["job"]))
    def get_object(self, job: Job) -> str:
        return "job"

    @extend_schema_field(serializers.ChoiceField(choices=JobEndedReason.values, allow_null=True))
    def get_ended_reason(self, job: Job) -> str | None:
        return job.ended_reason or None

    def get_error(self, job: Job) -> str | None:
        return job.error or None

    def get_done(self, job: Job) -> int:
        return self._progress().done

    @extend_schema_field(JobCountsOutput)
    def get_counts(self, job: Job) -> dict[str, int]:
        counts = self._progress().counts
        return {name: counts[name] for name in _COUNTED}

    @extend_schema_field(
        serializers.ChoiceField(
            choices=list(BROWSER_FLAVOURS), help_text="The job browsers' flavour (`browser` at submit)."
        )
    )
    def get_browser(self, job: Job) -> str:
        return str(job.spec.get("browser") or CHROMIUM)  # jobs submitted before flavours ran full Chromium

    def get_pages_per_minute(self, job: Job) -> float | None:
        return self._progress().pages_per_minute

    def get_eta_seconds(self, job: Job) -> int | None:
        return self._progress().eta_seconds

    @extend_schema_field(JobInvalidUrlOutput(many=True, allow_null=True))
    def get_invalid_urls(self, job: Job) -> list[dict[str, Any]] | None:
        return None if self.context.get("listed") else job.invalid_urls

    @extend_schema_field(serializers.ListField(child=serializers.CharField(), allow_null=True))
    def get_duplicate_urls(self, job: Job) -> list[str] | None:
        return None if self.context.get("listed") else job.duplicate_urls

    @extend_schema_field(JobWebhookOutput(allow_null=True))
    def get_webhook(self, job: Job) -> dict[str, Any] | None:
        if not job.webhook:
            return None
        progress = self._progress()
        return {
            "url": job.webhook["url"],
            "events": job.webhook.get("events") or list(WEBHOOK_EVENTS),
            "failures": progress.webhook_failures,
            "last_error": progress.webhook_last_error or None,
        }


@extend_schema_serializer(component_name="JobItemError")
class JobItemErrorOutput(serializers.Serializer[Any]):
    code = serializers.CharField()
    message = serializers.CharField()


@extend_schema_serializer(component_name="JobResult")
class JobItemOutput(serializers.Serializer[JobItem]):
    # Renders a JobItem; its screenshot URL (or None) comes from the context's `screenshot_url`
    # function (it needs the request).
    item_id = serializers.IntegerField(source="pk")
    key = serializers.CharField()
    url = serializers.CharField()
    metadata = serializers.JSONField(allow_null=True)
    final_url = serializers.SerializerMethodField()
    status = serializers.ChoiceField(choices=ItemStatus.values)
    http_status = serializers.IntegerField(allow_null=True)
    # `data` (the scrape result) is declared in get_fields: as a class attribute it would hide
    # Serializer.data from the type checker.
    screenshot_url = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()
    attempts = serializers.IntegerField()
    credits = serializers.IntegerField()
    finished_at = IsoDateTimeField(allow_null=True)

    def get_fields(self) -> dict[str, serializers.Field]:  # type: ignore[type-arg]  # drf-stubs' Field is generic
        fields = super().get_fields()
        ordered = list(fields.items())
        at = [name for name, _ in ordered].index("screenshot_url")
        ordered.insert(at, ("data", serializers.JSONField(allow_null=True, help_text="The scrape result.")))
        return dict(ordered)

    def get_final_url(self, item: JobItem) -> str | None:
        return item.final_url or None

    def get_screenshot_url(self, item: JobItem) -> str | None:
        url_of: Callable[[JobItem], str | None] = self.context["screenshot_url"]
        return url_of(item)

    @extend_schema_field(JobItemErrorOutput(allow_null=True))
    def get_error(self, item: JobItem) -> dict[str, str] | None:
        return {"code": item.error_code, "message": item.error_message} if item.error_code else None


def job_output(job: Job, progress: JobProgress, *, listed: bool = False) -> dict[str, Any]:
    """A job; `listed` (in GET /v1/jobs) without the skipped URLs, which only the job's own
    page carries."""
    return dict(JobOutput(job, context={"progress": progress, "listed": listed}).data)


def items_output(
    items: list[JobItem], screenshot_url: Callable[[JobItem], str | None]
) -> list[dict[str, Any]]:
    """Many items through one serializer (the per-item cost of a list is far below one's)."""
    return list(JobItemOutput(items, many=True, context={"screenshot_url": screenshot_url}).data)  # type: ignore[arg-type]  # many=True takes a list


def item_output(item: JobItem, screenshot_url: str | None) -> dict[str, Any]:
    return dict(JobItemOutput(item, context={"screenshot_url": lambda _: screenshot_url}).data)
