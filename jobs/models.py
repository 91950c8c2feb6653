"""Batch scraping jobs: a job, its items (one URL each) and the browsers that work on it.

The rows are the truth; Celery carries ids only. Items are claimed under the job's row lock
with a lease that a heartbeat renews, so a lost worker's items go back to the queue when the
lease expires (see jobs/services/).
"""

from __future__ import annotations

import secrets

from django.db import models
from django.db.models import Q

from sessions.models import BrowserLocationColumns


def new_job_id() -> str:
    return "job_" + secrets.token_hex(12)


def new_job_browser_id() -> str:
    # The browser's profile directory is named after this id; reconcile asks jobs whether a
    # `job-` id is live (workers/services.py).
    return "job-" + secrets.token_hex(12)


class JobStatus(models.TextChoices):
    QUEUED = "queued"  # waiting for a browser slot (plan limits) or a worker
    RUNNING = "running"
    CANCELLING = "cancelling"  # cancel asked; items in flight finish or stop
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_JOB_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.CANCELLING)
FINISHED_JOB_STATUSES = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


class JobEndedReason(models.TextChoices):
    ALL_DONE = "all_done"
    CANCELLED = "cancelled"
    BUDGET_EXHAUSTED = "budget_exhausted"
    CREDITS_EXHAUSTED = "credits_exhausted"
    EXPIRED = "expired"
    INTERNAL_ERROR = "internal_error"


class ItemStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"  # never tried: the job's budget ran out
    CANCELLED = "cancelled"


OPEN_ITEM_STATUSES = (ItemStatus.QUEUED, ItemStatus.RUNNING)


class Job(models.Model):
    id = models.CharField(primary_key=True, max_length=40, default=new_job_id, editable=False)
    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="jobs")
    # The API key it was submitted with (its hold and pages are charged to that key).
    api_key = models.ForeignKey(
        "accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    ended_reason = models.CharField(max_length=32, choices=JobEndedReason.choices, blank=True, default="")
    error = models.TextField(blank=True, default="")

    # What to do on each page: {"scrape": {...}, "screenshot": bool, "wait_for": {...} | None,
    # "page_timeout_seconds": int}.
    spec = models.JSONField(default=dict)
    max_concurrency = models.PositiveIntegerField(default=2)
    per_domain_concurrency = models.PositiveIntegerField(default=2)
    max_retries = models.PositiveIntegerField(default=2)
    max_credits = models.PositiveBigIntegerField(null=True, blank=True)

    total = models.PositiveIntegerField(default=0)
    invalid_urls = models.JSONField(default=list, blank=True)
    duplicate_urls = models.JSONField(default=list, blank=True)

    # Money, in credits. The price of one page is fixed at submit. `credits_held` is what the
    # job_hold ledger line took from the balance and has not been spent or released yet;
    # `credits_pending` the part of it promised to pages in flight (a page is claimed only if
    # its price fits in held - pending, so the budget is never exceeded).
    page_price = models.PositiveIntegerField()
    credits_held = models.BigIntegerField(default=0)
    credits_pending = models.BigIntegerField(default=0)
    credits_used = models.BigIntegerField(default=0)

    webhook = models.JSONField(null=True, blank=True)  # {"url", "secret", "events"}
    # Upstream proxies (docs/proxies.md): the sealed configuration its browsers' routes are built
    # from (sessions/proxies.py, bound to the job's id; never shown), what the operator's pool
    # carried for all its browsers and the started MB charged for it (`proxy_mb`).
    proxy_config = models.BinaryField(null=True, blank=True, editable=False)
    proxy_bytes = models.BigIntegerField(default=0)
    proxy_billed_mb = models.PositiveIntegerField(default=0)

    idempotency_key = models.CharField(max_length=200, blank=True, default="")
    request_hash = models.CharField(max_length=64, blank=True, default="")

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Results are deleted after this (set when the job finishes).
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="job_idempotency_key_once_per_account",
            ),
            models.CheckConstraint(
                condition=Q(credits_pending__gte=0) & Q(credits_held__gte=models.F("credits_pending")),
                name="job_pending_within_hold",
            ),
        ]
        indexes = [
            models.Index(fields=["account", "-created_at"], name="job_account_recent"),
            models.Index(
                fields=["created_at"],
                name="job_active",
                condition=Q(status__in=["queued", "running", "cancelling"]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.pk} {self.status}"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_JOB_STATUSES


class JobItem(models.Model):
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="items")
    seq = models.PositiveIntegerField()  # submit order
    key = models.CharField(max_length=2048)
    url = models.CharField(max_length=4096)
    domain = models.CharField(max_length=255)
    metadata = models.JSONField(null=True, blank=True)

    status = models.CharField(max_length=16, choices=ItemStatus.choices, default=ItemStatus.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    # Tries lost with their worker: they do not count against max_retries.
    lost_attempts = models.PositiveIntegerField(default=0)
    not_before = models.DateTimeField(null=True, blank=True)
    leased_by = models.CharField(max_length=40, blank=True, default="")
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    final_url = models.CharField(max_length=4096, blank=True, default="")
    http_status = models.PositiveIntegerField(null=True, blank=True)
    data = models.JSONField(null=True, blank=True)
    screenshot = models.CharField(max_length=100, blank=True, default="")
    error_code = models.CharField(max_length=32, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    credits = models.PositiveIntegerField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "key"], name="job_item_key_once")]
        indexes = [
            models.Index(fields=["job", "status", "seq"], name="job_item_by_status"),
            models.Index(fields=["job", "seq"], name="job_item_order"),
            models.Index(fields=["lease_expires_at"], name="job_item_leased", condition=Q(status="running")),
        ]

    def __str__(self) -> str:
        return f"{self.job_id}#{self.seq} {self.status}"


class JobBrowser(BrowserLocationColumns):
    """One browser working for one job. Counts against the plan's concurrent-session limit while
    live. Any worker on its host can attach to it by its location (as for a session)."""

    id = models.CharField(primary_key=True, max_length=40, default=new_job_browser_id, editable=False)
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="browsers")
    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="job_browsers")
    is_live = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField()
    pages_done = models.PositiveIntegerField(default=0)
    # Pages on the current browser process (recycled after JOB_BROWSER_RECYCLE_PAGES).
    pages_on_browser = models.PositiveIntegerField(default=0)

    # Set once its browser is known to be stopped.
    browser_released_at = models.DateTimeField(null=True, blank=True)
    # Bytes its browser moved through the operator's proxy pool, the egress filter's running
    # total under this browser's meter (all its processes, restarts included); the job's total
    # is the sum over its browsers.
    proxy_bytes = models.BigIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(fields=["account"], name="job_browser_live", condition=Q(is_live=True)),
        ]

    def __str__(self) -> str:
        return self.pk
