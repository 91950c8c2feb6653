from __future__ import annotations

from django.conf import settings
from django.db import models


class Plan(models.Model):
    name = models.SlugField(max_length=32, unique=True)
    # None means unlimited.
    max_concurrent_sessions = models.PositiveIntegerField(null=True, blank=True)
    max_lifetime_seconds = models.PositiveIntegerField()
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    # Batch jobs: URLs in one job, and jobs running at once (None: unlimited).
    max_job_urls = models.PositiveIntegerField(default=100)
    max_running_jobs = models.PositiveIntegerField(null=True, blank=True, default=1)
    # Jobs of one account waiting to start at once (None: unlimited): each is rows a tenant made
    # the service keep and every admission pass reads.
    max_queued_jobs = models.PositiveIntegerField(null=True, blank=True)
    # Requests of one account that may wait for a result at once (action waits, browser starts),
    # each holding a web thread (accounts/inflight.py). None: ACCOUNT_MAX_INFLIGHT_REQUESTS.
    max_waiting_requests = models.PositiveIntegerField(null=True, blank=True)
    # Webhook endpoints an account may have (/v1/webhooks).
    max_webhook_endpoints = models.PositiveIntegerField(default=10)
    # Saved browser states (persistent sessions, docs/saved-state.md): the largest one, how many
    # an account keeps (None: unlimited), and how long one unused is kept.
    saved_state_max_bytes = models.PositiveBigIntegerField(default=10 * 1024 * 1024)
    max_saved_states = models.PositiveIntegerField(null=True, blank=True, default=10)
    saved_state_retention_days = models.PositiveIntegerField(default=30)
    # Whether a session records its screen when its create does not say (`record`).
    record_sessions_by_default = models.BooleanField(default=False)
    # Recordings (docs/logs-and-recordings.md): days one is kept after its session ended, and the
    # bytes all of an account's recordings (frames and MP4 exports) may hold. None: the service's
    # RECORDING_RETENTION_DAYS / RECORDING_ACCOUNT_STORAGE_BYTES.
    recording_retention_days = models.PositiveIntegerField(null=True, blank=True)
    recording_storage_bytes = models.PositiveBigIntegerField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name


class Account(models.Model):
    name = models.CharField(max_length=200)
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="accounts")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    # DRF treats the authenticated principal as request.user; an account is that principal.
    is_authenticated = True

    def __str__(self) -> str:
        return self.name


class ApiKey(models.Model):
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True, default="")
    # The raw key is shown once at creation; only its SHA-256 and a visible prefix are kept.
    prefix = models.CharField(max_length=16)
    hashed_key = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.account})"


class Membership(models.Model):
    """A console user's place in an account (console/, docs/console.md). Operators keep the admin
    (is_staff); a member sees only their account. Owners also receive the account's emails
    (alerts, billing), found by lower layers through the model label `accounts.Membership`."""

    class Role(models.TextChoices):
        OWNER = "owner"
        MEMBER = "member"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "account"], name="membership_user_account_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.account} ({self.role})"
