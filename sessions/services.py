"""Session lifecycle: admission, expiry, keepalive and termination.

The web process writes rows and enqueues (sessions/dispatch.py); workers start and stop browsers
and report back through sessions/browser_state.py.
Every state change is a conditional UPDATE on the row's current status, so concurrent requests,
sweeps and redelivered tasks each change a session at most once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from accounts.models import Account
from billing.services import session_minute_charge
from project.db import retry_on_conflict
from project.exceptions import (
    Busy,
    InsufficientCredits,
    InvalidInput,
    ServiceUnavailable,
    SessionEnded,
    TooManyRequests,
)
from sessions import dispatch, placement, proxies, saved_state
from sessions.events import session_events_publish, session_status_event, session_status_publish
from sessions.location import BROWSER_FLAVOURS, CHROMIUM
from sessions.models import (
    LIVE_STATUSES,
    BrowserSession,
    EndedReason,
    SessionStatus,
    idle_over,
    lifetime_over,
    session_alive,
    session_expired,
)
from sessions.recordings import recording_open

# Browsers an account runs outside sessions (a batch job's) count against the same plan limit.
# Higher layers register a counter (account id -> live browsers) here, so that sessions never
# imports them (jobs/apps.py).
extra_browser_counters: list[Callable[[int], int]] = []


def account_browsers_in_use(*, account_id: int) -> int:
    """Live sessions plus other live browsers of the account (what the plan limit counts)."""
    live = BrowserSession.objects.filter(account_id=account_id, status__in=LIVE_STATUSES).count()
    return live + sum(counter(account_id) for counter in extra_browser_counters)


@dataclass(frozen=True)
class SessionSpec:
    kind: str = "browser"
    max_lifetime_seconds: int | None = None
    inactivity_timeout_seconds: int | None = None
    idle_timeout_enabled: bool = True
    display_width: int = 1024
    display_height: int = 768
    display_scale: float = 1.0
    options: dict[str, Any] | None = None
    # The tenant's own proxy rules, checked (sessions/proxies.py), credentials included.
    proxies: list[dict[str, str]] | None = None
    # The browser's flavour (sessions/location.py): full Chromium or the headless shell.
    browser: str = CHROMIUM


def started_event(session_id: str) -> str:
    return f"session-started:{session_id}"


def session_terminate(*, session_id: str, reason: str, error: str = "") -> bool:
    """End a live session; its browser is freed by a stop task. False if it had already ended."""
    changed = BrowserSession.objects.filter(pk=session_id, status__in=LIVE_STATUSES).update(
        status=SessionStatus.TERMINATED, ended_reason=reason, ended_at=timezone.now(), error=error[:2000]
    )
    if changed:
        session_status_publish(session_id=session_id, status=SessionStatus.TERMINATED, ended_reason=reason)
        where = BrowserSession.objects.filter(pk=session_id).values_list("host", "backend").first()
        host, backend = where or ("", "")
        dispatch.browser_stop(session_id, host=host, backend=backend)
    return bool(changed)


def session_enforce_expiry(*, session: BrowserSession, now: datetime | None = None) -> BrowserSession:
    """End the session at once if it is past a deadline; nothing may act on an expired session."""
    reason = session.expiry_reason(now or timezone.now())
    if reason is not None:
        session_terminate(session_id=session.pk, reason=reason)
        session.refresh_from_db()
    return session


def _end_expired_sessions_of(account: Account, now: datetime) -> None:
    for session in BrowserSession.objects.filter(session_expired(now), account=account):
        session_enforce_expiry(session=session, now=now)


@retry_on_conflict
def session_create(*, account: Account, spec: SessionSpec, api_key_id: int | None = None) -> BrowserSession:
    """Admit and record a session, then have a worker start its browser.

    The account row lock serializes creates of one account, so two concurrent creates cannot
    both take the last slot of the plan.
    """
    if spec.kind != "browser":
        raise InvalidInput(
            f"kind {spec.kind!r} is not supported: this server runs browser sessions only.",
            code="unsupported_kind",
        )
    browser_flavour_check(spec.browser)
    now = timezone.now()
    with transaction.atomic():
        # of=("self",): the plan is read, not locked; locking it would queue every tenant of a
        # plan behind the others (tests/jobs/test_plan_row_locks.py).
        account = (
            Account.objects.select_for_update(no_key=True, of=("self",))
            .select_related("plan")
            .get(pk=account.pk)
        )
        plan = account.plan
        lifetime = spec.max_lifetime_seconds or plan.max_lifetime_seconds
        if lifetime > plan.max_lifetime_seconds:
            raise InvalidInput(
                f"max_lifetime_seconds {lifetime} is above the {plan.name} plan's maximum of "
                f"{plan.max_lifetime_seconds} seconds.",
                code="lifetime_above_plan_maximum",
                extra={"max_lifetime_seconds": plan.max_lifetime_seconds},
            )
        _end_expired_sessions_of(account, now)
        saved_state.saved_state_admit(account=account, options=spec.options or {}, now=now)
        limit = plan.max_concurrent_sessions
        if limit is not None:
            live = list(BrowserSession.objects.filter(account=account, status__in=LIVE_STATUSES))
            in_use = len(live) + sum(counter(account.pk) for counter in extra_browser_counters)
            if in_use >= limit:
                raise TooManyRequests(
                    f"The {plan.name} plan allows {limit} concurrent sessions and {in_use} are "
                    "running (batch job browsers included); end one (DELETE /computers/{id}) or wait "
                    "for one to expire.",
                    code="concurrency_limit",
                    retry_after=_seconds_until_a_slot_frees(live, now),
                    extra={"limit": limit},
                )
        chosen = placement.placement_choose(now=now, flavour=spec.browser)
        inactivity = spec.inactivity_timeout_seconds or settings.DEFAULT_INACTIVITY_TIMEOUT_SECONDS
        session = BrowserSession(
            account=account,
            api_key_id=api_key_id,
            kind=spec.kind,
            status=SessionStatus.STARTING,
            created_at=now,
            last_activity_at=now,
            expires_at=now + timedelta(seconds=lifetime),
            max_lifetime_seconds=lifetime,
            inactivity_timeout_seconds=inactivity,
            idle_timeout_enabled=spec.idle_timeout_enabled,
            display_width=spec.display_width,
            display_height=spec.display_height,
            display_scale=spec.display_scale,
            options=spec.options or {},
            browser=spec.browser,
        )
        session.idle_expires_at = session.idle_deadline(now)
        record = session.options.get("record")
        session.options["record"] = plan.record_sessions_by_default if record is None else bool(record)
        session.billed_minutes = 1
        _proxy_config_set(session, spec)
        session.host = chosen.host
        warm = chosen.warm
        if warm is not None:
            # The session takes the claimed browser's handle; still `starting` until its host's
            # worker has applied the display (the web process never drives a browser).
            session.location = warm.location
        session.save(force_insert=True)
        if session.options["record"]:
            recording_open(session=session, now=now)
        _charge_first_minute(session)
        if warm is not None:
            dispatch.browser_adopt(session.pk, host=warm.host)
            if not session.options.get("environment_id"):
                # A restore's refill is sent by its worker once the state is in (a Chromium
                # start beside it would take the CPU the restore needs: workers/services.py).
                dispatch.pool_refill(warm.host, expires=60)
        else:
            dispatch.browser_start(session.pk, host=chosen.host)
    return session


def browser_flavour_check(flavour: str) -> None:
    """400 browser_unavailable when this service cannot run `flavour`: the Grid backend's nodes run
    their own browser, full Chromium (a local host without the binary fails the start: 503)."""
    if flavour not in BROWSER_FLAVOURS:
        raise InvalidInput(
            f"browser must be one of {', '.join(BROWSER_FLAVOURS)}, not {flavour!r}.", code="invalid"
        )
    if flavour != CHROMIUM and settings.BROWSER_BACKEND != "local":
        raise InvalidInput(
            f"browser {flavour!r} is not available here: the Selenium Grid backend runs full Chromium "
            "only. Nothing was created.",
            code="browser_unavailable",
        )


def _proxy_config_set(session: BrowserSession, spec: SessionSpec) -> None:
    """Seal the session's proxy configuration onto it (use_advanced_proxy: a pool member, kept
    for the session); ProxyUnavailable (4xx) when it cannot be honoured: never silently direct."""
    options = session.options
    if options.get("use_advanced_proxy"):
        proxies.proxies_available()
        country = str(options.get("proxy_country") or "")
        member = proxies.pool_choose(session_id=session.pk, country=country)
        config: dict[str, Any] = {"pool": member.name, "country": country}
    elif spec.proxies:
        proxies.proxies_available()
        config = {"rules": spec.proxies}
        options["proxies"] = proxies.proxies_public(spec.proxies)
    else:
        return
    session.proxy_config = proxies.proxy_config_seal(session_id=session.pk, config=config)


def session_proxy_change(
    *, session_id: str, proxy_url: str, username: str = "", password: str = ""
) -> dict[str, Any]:
    """The session's proxy from now on (change-proxy): every host through `proxy_url` (checked by
    sessions.proxies), or direct. Returns the egress route document for its browser."""
    if proxy_url == "direct":
        config: dict[str, Any] = {"rules": [{"server": "direct", "domain_pattern": ""}]}
    else:
        config = {
            "rules": [{"server": proxy_url, "username": username, "password": password, "domain_pattern": ""}]
        }
    session = BrowserSession.objects.get(pk=session_id)
    options = {**session.options, "proxies": proxies.proxies_public(config["rules"])}
    BrowserSession.objects.filter(pk=session_id).update(
        proxy_config=proxies.proxy_config_seal(session_id=session_id, config=config), options=options
    )
    return proxies.route_document(session_id=session_id, config=config)


def _charge_first_minute(session: BrowserSession) -> None:
    try:
        session_minute_charge(
            account_id=session.account_id,
            session_id=session.pk,
            minute=0,
            api_key_id=session.api_key_id,
            enforce_key_cap=True,
        )
    except InsufficientCredits as exc:
        raise InsufficientCredits(
            f"A session needs {exc.extra['required']} credits for its first minute and the balance is "
            f"{exc.extra['balance']}. Top up to start a session.",
            extra=exc.extra,
        ) from None


def _seconds_until_a_slot_frees(live: list[BrowserSession], now: datetime) -> int:
    deadlines = [s.expires_at for s in live] + [
        s.idle_expires_at for s in live if s.idle_timeout_enabled and s.idle_expires_at
    ]
    soonest = min(deadlines, default=now + timedelta(seconds=60))
    # The SDK honours Retry-After only up to 60 s.
    return max(1, min(60, int((soonest - now).total_seconds()) + 1))


def session_start_waited(*, session: BrowserSession) -> BrowserSession:
    """The session after its create waited (bounded) for its start signal (started_event): if the
    browser is still starting, too slow: end it. 503 if it did not start."""
    session.refresh_from_db()
    if session.status == SessionStatus.STARTING:
        # Too slow: end it. The start task sees the ended row and stops what it started.
        session_terminate(session_id=session.pk, reason=EndedReason.START_FAILED, error="start timed out")
        session.refresh_from_db()
    if session.status == SessionStatus.TERMINATED:
        raise ServiceUnavailable(
            "The browser could not be started; no session is running and nothing was charged. Try again.",
            code="browser_start_failed",
            retry_after=1,
        )
    return session


def session_wait_released(*, session: BrowserSession, timeout: float) -> BrowserSession:
    """Wait (bounded) until the ended session's browser is gone, so the caller may rely on it."""
    deadline = time.monotonic() + timeout
    while session.browser_released_at is None and time.monotonic() < deadline:
        time.sleep(0.05)
        session.refresh_from_db(fields=["browser_released_at"])
    return session


def _ended(session: BrowserSession) -> SessionEnded:
    return SessionEnded(
        f"Session {session.pk} has ended ({session.ended_reason or 'expired'}).",
        extra={"ended_reason": session.ended_reason},
    )


def session_require_active(*, session: BrowserSession) -> BrowserSession:
    """The session if it may take activity now; writes nothing except ending an expired one.

    410 if the session ended or expired (an expired one ends right here); 409 while its browser
    is still starting.
    """
    session = session_enforce_expiry(session=session)
    if session.status == SessionStatus.STARTING:
        raise Busy("The session's browser is still starting; try again.", code="session_starting")
    if session.status == SessionStatus.TERMINATED:
        raise _ended(session)
    return session


def session_touch(*, session: BrowserSession) -> BrowserSession:
    """Record activity: reset the idle timer, ready -> running.

    410 if the session ended or expired (an expired one ends right here); 409 while its browser
    is still starting.
    """
    session = session_require_active(session=session)
    now = timezone.now()
    idle_deadline = session.idle_deadline(now)
    # The WHERE repeats the expiry test so that a sweep between our check and our write wins.
    changed = BrowserSession.objects.filter(session_alive(now), pk=session.pk).update(
        last_activity_at=now,
        idle_expires_at=idle_deadline,
        status=Case(When(status=SessionStatus.READY, then=Value(SessionStatus.RUNNING)), default=F("status")),
    )
    if changed:
        # What the UPDATE wrote; no need to read the row back.
        session.last_activity_at, session.idle_expires_at = now, idle_deadline
        if session.status == SessionStatus.READY:
            session.status = SessionStatus.RUNNING
            session_status_publish(session_id=session.pk, status=SessionStatus.RUNNING, at=now)
    else:
        session.refresh_from_db()
        raise _ended(session)
    return session


def sessions_sweep(*, now: datetime | None = None, batch_size: int = 500, max_batches: int = 20) -> int:
    """End live sessions past a deadline; return how many this run ended.

    Reads only live rows past their deadline, through partial indexes, so a run costs in
    proportion to the expired sessions. Each batch locks its rows (`SKIP LOCKED`: a session an
    action is being accepted on right now waits for the next run), ends them in one UPDATE and
    sends their stops in a few messages per host. Concurrent sweeps each end a session at most once.
    """
    now = now or timezone.now()
    stuck_start = now - timedelta(
        seconds=settings.BROWSER_START_TIMEOUT_SECONDS + settings.SESSION_CREATE_WAIT_SECONDS + 30
    )
    ended = 0
    for reason, deadline_passed in (
        (EndedReason.MAX_LIFETIME, lifetime_over(now)),
        (EndedReason.IDLE, idle_over(now)),
        (EndedReason.START_FAILED, Q(status=SessionStatus.STARTING, created_at__lte=stuck_start)),
    ):
        for _ in range(max_batches):
            with transaction.atomic():
                rows = list(
                    BrowserSession.objects.select_for_update(skip_locked=True)
                    .filter(deadline_passed, status__in=LIVE_STATUSES)
                    .values_list("pk", "host", "backend")[:batch_size]
                )
                ended_at = timezone.now()
                BrowserSession.objects.filter(pk__in=[pk for pk, _, _ in rows]).update(
                    status=SessionStatus.TERMINATED, ended_reason=reason, ended_at=ended_at
                )
                session_events_publish(
                    [
                        session_status_event(
                            session_id=pk, status=SessionStatus.TERMINATED, ended_reason=reason, at=ended_at
                        )
                        for pk, _, _ in rows
                    ]
                )
                dispatch.browser_stop_many(rows)
            ended += len(rows)
            if len(rows) < batch_size:
                break
    return ended
