from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from django.db import models
from django.db.models import Q

from sessions.location import CHROMIUM, HEADLESS_SHELL, BrowserLocation


def new_session_id() -> str:
    return "comp_" + secrets.token_hex(12)


class SessionStatus(models.TextChoices):
    STARTING = "starting"  # row written, a worker is starting the browser
    READY = "ready"  # browser up, no action yet
    RUNNING = "running"  # at least one action or keepalive
    TERMINATED = "terminated"  # final


LIVE_STATUSES = (SessionStatus.STARTING, SessionStatus.READY, SessionStatus.RUNNING)
_LIVE = Q(status__in=LIVE_STATUSES)


# Is this session alive? Written once, here: as Q objects for the statements that select or
# claim rows, and as `BrowserSession.expiry_reason` for a row in hand (tests/sessions/
# test_liveness.py holds the two to the same answers). The accept statement
# (sessions/action_queue.py) renders `session_alive` into its SQL.


def lifetime_over(now: datetime) -> Q:
    """Past its maximum lifetime (that deadline always applies)."""
    return Q(expires_at__lte=now)


def idle_over(now: datetime) -> Q:
    """Past its idle deadline; the idle timer runs from when the browser is ready, never while
    it starts."""
    return Q(idle_timeout_enabled=True, idle_expires_at__lte=now) & ~Q(status=SessionStatus.STARTING)


def session_expired(now: datetime) -> Q:
    """Live, and must end at `now` (nothing may act on it)."""
    return _LIVE & (lifetime_over(now) | idle_over(now))


def session_alive(now: datetime) -> Q:
    """Live, and within its deadlines at `now`."""
    return _LIVE & ~(lifetime_over(now) | idle_over(now))


class EndedReason(models.TextChoices):
    USER = "user"
    IDLE = "idle"
    MAX_LIFETIME = "max_lifetime"
    CREDITS_EXHAUSTED = "credits_exhausted"
    CRASHED = "crashed"
    ADMIN = "admin"
    START_FAILED = "start_failed"
    # The service on its host was stopped for good (`bin/dev serve` ended, manage.py host_shutdown).
    SHUTDOWN = "shutdown"


class BrowserFlavour(models.TextChoices):
    """What a browser runs (sessions/location.py): full Chromium or Chromium's headless shell."""

    CHROMIUM = CHROMIUM
    HEADLESS_SHELL = HEADLESS_SHELL


class BrowserLocationColumns(models.Model):
    """Where a browser lives (sessions.location.BrowserLocation), as row columns: blank until
    its browser is up. Shared by every row that owns a browser (sessions, pool, job browsers)."""

    backend = models.CharField(max_length=16, blank=True, default="")
    webdriver_url = models.CharField(max_length=300, blank=True, default="")
    webdriver_session_id = models.CharField(max_length=100, blank=True, default="")
    host = models.CharField(max_length=255, blank=True, default="")
    browser_pid = models.IntegerField(null=True, blank=True)
    profile_dir = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        abstract = True

    @property
    def location(self) -> BrowserLocation:
        return BrowserLocation(
            backend=self.backend,
            webdriver_url=self.webdriver_url,
            webdriver_session_id=self.webdriver_session_id,
            host=self.host,
            browser_pid=self.browser_pid,
            profile_dir=self.profile_dir,
        )

    @location.setter
    def location(self, location: BrowserLocation) -> None:
        for column, value in location.columns().items():
            setattr(self, column, value)


class BrowserSession(BrowserLocationColumns):
    id = models.CharField(primary_key=True, max_length=40, default=new_session_id, editable=False)
    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="sessions")
    # The API key it was created with (its minutes are charged to that key).
    api_key = models.ForeignKey(
        "accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="sessions"
    )
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
    # Tzafon create fields we echo (persistent and environment_id are acted on: saved_state.py).
    options = models.JSONField(default=dict, blank=True)
    # The browser's flavour (the create's extension field `browser`), full Chromium by default
    # (in the database too: rows that code from before flavours writes are full Chromium's).
    browser = models.CharField(
        max_length=16,
        choices=BrowserFlavour.choices,
        default=BrowserFlavour.CHROMIUM,
        db_default=BrowserFlavour.CHROMIUM,
    )

    # Where the browser lives: BrowserLocationColumns.
    # The WebDriver window that was current after the last action (blank: unknown, ask the
    # browser). Saves every action a GET /window; see workers/browser/executor/.
    main_tab_id = models.CharField(max_length=100, blank=True, default="")
    # Set once the browser is known to be gone; a terminated row without it still holds one.
    browser_released_at = models.DateTimeField(null=True, blank=True)
    # Started minutes charged so far (minute m is [created_at + m min, created_at + (m+1) min)).
    billed_minutes = models.PositiveIntegerField(default=0)
    # Upstream proxies (sessions/proxies.py): the configuration, sealed with the session's id;
    # null: direct. Never shown: `options` echoes servers and patterns without credentials.
    proxy_config = models.BinaryField(null=True, blank=True, editable=False)
    # Bytes through the operator's pool charged so far (proxy_mb), and whole MB charged.
    proxy_bytes = models.BigIntegerField(default=0)
    proxy_billed_mb = models.PositiveIntegerField(default=0)

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
            # A host's load (admission, placement) and its sessions when it dies.
            models.Index(fields=["host"], condition=_LIVE, name="session_live_host"),
            # Proxy metering's scan (workers/services.py proxy_bytes_bill): live sessions come
            # from session_live_host, recently ended proxied ones from here; without it the OR
            # of the two read every session ever (bench/periodic_scans.py).
            models.Index(
                fields=["ended_at"], condition=Q(proxy_config__isnull=False), name="session_proxied_ended"
            ),
        ]

    def __str__(self) -> str:
        return self.id

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES

    def expiry_reason(self, now: datetime) -> str | None:
        """Why this live session must end at `now`, or None while it may go on."""
        # The Python form of lifetime_over / idle_over above.
        if not self.is_live:
            return None
        if self.expires_at <= now:
            return EndedReason.MAX_LIFETIME
        if (
            self.status != SessionStatus.STARTING
            and self.idle_timeout_enabled
            and self.idle_expires_at is not None
            and self.idle_expires_at <= now
        ):
            return EndedReason.IDLE
        return None

    def idle_deadline(self, last_activity_at: datetime) -> datetime | None:
        if not self.idle_timeout_enabled:
            return None
        return last_activity_at + timedelta(seconds=self.inactivity_timeout_seconds)


def new_action_id() -> str:
    return "act_" + secrets.token_hex(12)


class ActionStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # ran, and failed on the page (element not found, navigation error...)
    ERRORED = "errored"  # did not run to the end because of us: browser crashed, worker lost
    CANCELLED = "cancelled"  # the session ended before the action's turn


FINISHED_ACTION_STATUSES = (
    ActionStatus.SUCCEEDED,
    ActionStatus.FAILED,
    ActionStatus.ERRORED,
    ActionStatus.CANCELLED,
)


class Action(models.Model):
    """One accepted browser command, in the order accepted (by `id`) within its session."""

    id = models.BigAutoField(primary_key=True)
    public_id = models.CharField(max_length=40, unique=True, default=new_action_id, editable=False)
    session = models.ForeignKey(BrowserSession, on_delete=models.CASCADE, related_name="actions")
    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="actions")
    # The API key it was submitted with (its charge is that key's).
    api_key = models.ForeignKey(
        "accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="actions"
    )
    type = models.CharField(max_length=32)
    params = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=ActionStatus.choices, default=ActionStatus.QUEUED)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    executed_tab_id = models.CharField(max_length=100, blank=True, default="")
    page_context = models.JSONField(null=True, blank=True)
    request_id = models.CharField(max_length=200, blank=True, default="")
    # Credits charged when accepted (a batch: the sum of its steps, each listed in `step_prices`).
    price = models.PositiveIntegerField(default=0)
    step_prices = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # While running: until when the worker running it is known to be alive. Its heartbeat moves
    # it on; Beat settles an action whose lease ran out (sessions/action_queue.py).
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["session", "-id"], name="action_session_recent"),
            models.Index(
                fields=["lease_expires_at"], condition=Q(status="running"), name="action_running_lease"
            ),
            # The session's queue: what waits, and what a lost worker left running.
            models.Index(
                fields=["session", "id"],
                condition=Q(status__in=["queued", "running"]),
                name="action_session_pending",
            ),
            # Time windows of the operator dashboard (ops/selectors.py): recent actions only.
            models.Index(fields=["created_at"], name="action_created"),
        ]

    def __str__(self) -> str:
        return f"{self.public_id} {self.type}"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_ACTION_STATUSES

    @property
    def duration_ms(self) -> int | None:
        if self.started_at and self.finished_at:
            return int((self.finished_at - self.started_at).total_seconds() * 1000)
        return None


class WorkerHost(models.Model):
    """A machine whose workers run local browsers; alive while its heartbeat is recent."""

    name = models.CharField(primary_key=True, max_length=255)
    heartbeat_at = models.DateTimeField()
    started_at = models.DateTimeField()
    # What the host reported with its last heartbeat (its own settings).
    capacity = models.PositiveIntegerField()
    pool_size = models.PositiveIntegerField(default=0)  # full Chromium (BROWSER_POOL_SIZE)
    pool_size_headless_shell = models.PositiveIntegerField(default=0, db_default=0)  # ..._HEADLESS_SHELL

    def __str__(self) -> str:
        return self.name


# In the browser's profile path, so that reconcile tells pool browsers from sessions'.
WARM_BROWSER_ID_PREFIX = "pool_"


def new_warm_browser_id() -> str:
    return WARM_BROWSER_ID_PREFIX + secrets.token_hex(12)


class WarmBrowserState(models.TextChoices):
    STARTING = "starting"  # row written, the host's worker is starting the browser
    READY = "ready"  # blank and ready to be claimed by one create


class WarmBrowser(BrowserLocationColumns):
    """A started, blank browser a create may claim (then the row is deleted: used once)."""

    id = models.CharField(primary_key=True, max_length=40, default=new_warm_browser_id, editable=False)
    host = models.CharField(max_length=255)
    # A create claims only a warm browser of the flavour it asked for (a pool per flavour).
    flavour = models.CharField(
        max_length=16,
        choices=BrowserFlavour.choices,
        default=BrowserFlavour.CHROMIUM,
        db_default=BrowserFlavour.CHROMIUM,
    )
    state = models.CharField(
        max_length=16, choices=WarmBrowserState.choices, default=WarmBrowserState.STARTING
    )
    created_at = models.DateTimeField()
    ready_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["host", "state", "created_at"], name="warm_browser_host_state")]

    def __str__(self) -> str:
        return self.id


class SavedStateStatus(models.TextChoices):
    SAVING = "saving"  # a save is under way (the data, if any, is the previous save's)
    READY = "ready"  # the last save succeeded
    FAILED = "failed"  # the last save failed (`failure_reason`); the previous save's data is kept


class SavedState(models.Model):
    """A persistent session's saved browser state (docs/saved-state.md), addressed by the id of
    the session that saved it (Tzafon's `environment_id`). Its bytes, encrypted, are in the
    state store (sessions/state_store.py); this row holds what may be shown."""

    id = models.CharField(primary_key=True, max_length=40)
    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="saved_states")
    status = models.CharField(
        max_length=16, choices=SavedStateStatus.choices, default=SavedStateStatus.SAVING
    )
    failure_reason = models.CharField(max_length=500, blank=True, default="")
    # The environment this one was restored from (a chain A -> B -> C), blank for a first save.
    restored_from = models.CharField(max_length=40, blank=True, default="")
    # Of the data stored now (the last good save): plaintext JSON size, the origins it holds.
    size_bytes = models.PositiveBigIntegerField(default=0)
    stored_bytes = models.PositiveBigIntegerField(default=0)
    origins = models.JSONField(default=list, blank=True)
    cookie_count = models.PositiveIntegerField(default=0)
    # Where the bytes of the last good save are (sessions/state_store.py): the store that wrote
    # them, whatever SAVED_STATE_STORE says now, and the object's key in an object store.
    store = models.CharField(max_length=16, default="postgres")
    object_key = models.CharField(max_length=300, blank=True, default="")
    created_at = models.DateTimeField()
    saved_at = models.DateTimeField(null=True, blank=True)  # null: no data stored (yet)
    last_used_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["account", "-last_used_at"], name="saved_state_account_used"),
            models.Index(fields=["expires_at"], name="saved_state_expires"),
        ]

    def __str__(self) -> str:
        return self.id

    @property
    def has_data(self) -> bool:
        return self.saved_at is not None


class SavedStateBlob(models.Model):
    """The encrypted bytes of a saved state in the `postgres` store (sessions/state_store.py)."""

    state = models.OneToOneField(SavedState, primary_key=True, on_delete=models.CASCADE, related_name="blob")
    data = models.BinaryField()

    def __str__(self) -> str:
        return f"blob of {self.state_id}"


class PageLogKind(models.TextChoices):
    CONSOLE = "console"  # console.* calls and the browser's own messages (Log domain)
    ERROR = "error"  # uncaught page errors (exceptions, unhandled rejections)
    NETWORK = "network"  # a request the page made: method, URL, status, size, timing


class PageLogLevel(models.TextChoices):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class PageLogEntry(models.Model):
    """One console message, page error or network request of a session's browser, collected on
    its host through the DevTools protocol (workers/page_logs.py, docs/logs-and-recordings.md).
    Never a request body, a cookie or a header."""

    id = models.BigAutoField(primary_key=True)
    session = models.ForeignKey(BrowserSession, on_delete=models.CASCADE, related_name="page_logs")
    kind = models.CharField(max_length=16, choices=PageLogKind.choices)
    level = models.CharField(max_length=16, choices=PageLogLevel.choices)
    at = models.DateTimeField()
    data = models.JSONField(default=dict)

    class Meta:
        indexes = [models.Index(fields=["session", "id"], name="page_log_session_id")]

    def __str__(self) -> str:
        return f"{self.kind} {self.level} of {self.session_id}"


class PageLogStats(models.Model):
    """What a session's logs hold and what the cap dropped; the row the appender locks."""

    session = models.OneToOneField(
        BrowserSession, primary_key=True, on_delete=models.CASCADE, related_name="page_log_stats"
    )
    entries = models.PositiveIntegerField(default=0)
    bytes = models.PositiveBigIntegerField(default=0)
    # {kind: count} of entries not stored because the session's cap was reached.
    dropped = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return f"logs of {self.session_id}"


class RecordingStatus(models.TextChoices):
    RECORDING = "recording"  # the session is live; frames are being written
    PROCESSING = "processing"  # the session ended; its frames are being indexed
    READY = "ready"
    FAILED = "failed"  # `failure_reason` says why


class ExportStatus(models.TextChoices):
    NONE = ""  # never asked for
    PROCESSING = "processing"  # asked for; queued or being encoded
    READY = "ready"
    FAILED = "failed"  # `mp4_failure_reason` says why


class SessionRecording(models.Model):
    """A session's recording (create option `record`): JPEG frames of DevTools' screencast with
    their timestamps, in one file of frames and one index file under MEDIA_ROOT
    (workers/recorder.py, sessions/recordings.py)."""

    session = models.OneToOneField(
        BrowserSession, primary_key=True, on_delete=models.CASCADE, related_name="recording"
    )
    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="recordings")
    status = models.CharField(
        max_length=16, choices=RecordingStatus.choices, default=RecordingStatus.RECORDING
    )
    failure_reason = models.CharField(max_length=300, blank=True, default="")
    created_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    frame_count = models.PositiveIntegerField(default=0)
    duration_ms = models.PositiveIntegerField(default=0)
    size_bytes = models.PositiveBigIntegerField(default=0)
    # The cap (RECORDING_MAX_BYTES or RECORDING_MAX_SECONDS) stopped the recording early.
    truncated = models.BooleanField(default=False)
    # Which cap: the length, the size, or the account's storage (the plan's).
    truncated_reason = models.CharField(max_length=300, blank=True, default="")
    # A finalize claimed it until then (processing); past it, the sweep may claim it again.
    claimed_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # The MP4 export (`?format=mp4`, workers/recording_export.py), made once on first request;
    # the same claim and attempts pattern as the recording's own settling.
    mp4_status = models.CharField(max_length=16, choices=ExportStatus.choices, default="", blank=True)
    mp4_failure_reason = models.CharField(max_length=300, blank=True, default="")
    mp4_requested_at = models.DateTimeField(null=True, blank=True)
    mp4_claimed_until = models.DateTimeField(null=True, blank=True)
    mp4_attempts = models.PositiveSmallIntegerField(default=0)
    mp4_size_bytes = models.PositiveBigIntegerField(default=0)
    mp4_finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["status"],
                condition=Q(status__in=["recording", "processing"]),
                name="recording_unfinished",
            ),
            models.Index(
                fields=["mp4_status"], condition=Q(mp4_status="processing"), name="recording_mp4_unfinished"
            ),
            models.Index(fields=["finished_at"], name="recording_finished"),
        ]

    def __str__(self) -> str:
        return f"recording of {self.session_id}"
