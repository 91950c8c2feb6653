from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from django.db import models
from django.db.models import Q


def new_session_id() -> str:
    return "comp_" + secrets.token_hex(12)


class SessionStatus(models.TextChoices):
    STARTING = "starting"  # row written, a worker is starting the browser
    READY = "ready"  # browser up, no action yet
    RUNNING = "running"  # at least one action or keepalive
    TERMINATED = "terminated"  # final


LIVE_STATUSES = (SessionStatus.STARTING, SessionStatus.READY, SessionStatus.RUNNING)
_LIVE = Q(status__in=LIVE_STATUSES)


class EndedReason(models.TextChoices):
    USER = "user"
    IDLE = "idle"
    MAX_LIFETIME = "max_lifetime"
    CREDITS_EXHAUSTED = "credits_exhausted"
    CRASHED = "crashed"
    ADMIN = "admin"
    START_FAILED = "start_failed"


class BrowserSession(models.Model):
    id = models.CharField(primary_key=True, max_length=40, default=new_session_id, editable=False)
    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="sessions")
    kind = models.CharField(max_length=16, default="browser")
    status = models.CharField(max_length=16, choices=SessionStatus.choices, default=SessionStatus.STARTING)
    ended_reason = models.CharField(max_length=32, choices=EndedReason.choices, blank=True, default="")
    error = models.TextField(blank=True, default="")

    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    last_activity_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    # Null when the idle timeout is disabled.
    idle_expires_at = models.DateTimeField(null=True, blank=True)
    max_lifetime_seconds = models.PositiveIntegerField()
    inactivity_timeout_seconds = models.PositiveIntegerField()
    idle_timeout_enabled = models.BooleanField(default=True)

    display_width = models.PositiveIntegerField(default=1024)
    display_height = models.PositiveIntegerField(default=768)
    display_scale = models.FloatField(default=1.0)
    # Tzafon create fields we accept and echo but do not act on (persistent, stealth, ...).
    options = models.JSONField(default=dict, blank=True)

    # Where the browser lives: enough for any worker to attach to it.
    backend = models.CharField(max_length=16, blank=True, default="")
    webdriver_url = models.CharField(max_length=300, blank=True, default="")
    webdriver_session_id = models.CharField(max_length=100, blank=True, default="")
    host = models.CharField(max_length=255, blank=True, default="")
    browser_pid = models.IntegerField(null=True, blank=True)
    profile_dir = models.CharField(max_length=500, blank=True, default="")
    # Set once the browser is known to be gone; a terminated row without it still holds one.
    browser_released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # The sweep reads only live rows past their deadline: these partial indexes hold
            # live rows alone, so its cost follows the number of live sessions, not all rows.
            models.Index(fields=["expires_at"], condition=_LIVE, name="session_live_expires"),
            models.Index(
                fields=["idle_expires_at"],
                condition=_LIVE & Q(idle_timeout_enabled=True),
                name="session_live_idle_expires",
            ),
            models.Index(fields=["account", "status"], name="session_account_status"),
            models.Index(
                fields=["ended_at"],
                condition=Q(status=SessionStatus.TERMINATED, browser_released_at__isnull=True),
                name="session_unreleased",
            ),
        ]

    def __str__(self) -> str:
        return self.id

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES

    @property
    def has_browser(self) -> bool:
        return bool(self.webdriver_session_id)

    def expiry_reason(self, now: datetime) -> str | None:
        """Why this live session must end at `now`, or None while it may go on."""
        if not self.is_live:
            return None
        if self.expires_at <= now:
            return EndedReason.MAX_LIFETIME
        if self.idle_timeout_enabled and self.idle_expires_at is not None and self.idle_expires_at <= now:
            return EndedReason.IDLE
        return None

    def idle_deadline(self, last_activity_at: datetime) -> datetime | None:
        if not self.idle_timeout_enabled:
            return None
        return last_activity_at + timedelta(seconds=self.inactivity_timeout_seconds)
