"""Worker-side session services: start, stop and reconcile real browsers.

The session rows change only through sessions/ (browser_state.py, services.py): these run the
browsers and report what happened.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from redis.exceptions import LockError, RedisError
from redis.lock import Lock

from jobs.models import JobBrowser
from jobs.selectors import live_job_browser_ids, live_job_webdriver_ids
from jobs.services import job_end_unpaid, job_proxy_bill
from project.exceptions import is_outage
from project.redis import get_redis
from sessions import dispatch, placement, proxies
from sessions import saved_state as saved_states
from sessions.action_queue import action_has_queued
from sessions.browser_state import (
    hosts_dead_reap,
    session_browser_ready,
    session_browser_released,
    session_browser_start_abandoned,
    session_browser_start_failed,
)
from sessions.location import CHROMIUM, HEADLESS_SHELL, BrowserLocation
from sessions.models import (
    LIVE_STATUSES,
    WARM_BROWSER_ID_PREFIX,
    BrowserSession,
    EndedReason,
    SessionStatus,
    WarmBrowser,
    WarmBrowserState,
)
from sessions.proxy_billing import session_proxy_bill
from sessions.services import session_terminate
from sessions.state_crypto import StateSealError
from workers.action_runner import RESTORING_MARK_SECONDS, actions_drain, lock_key, restoring_key
from workers.browser import (
    BrowserBackend,
    BrowserError,
    BrowserStartError,
    Display,
    egress,
    get_backend,
    proxy_routes,
)
from workers.browser.base import prepare_first_tab
from workers.browser.driver import forget
from workers.browser.local import LocalBackend
from workers.browser.saved_state import state_export, state_has_storage, state_import
from workers.egress.metering import meter_key, meter_read
from workers.start_slots import start_slot

logger = logging.getLogger(__name__)


def session_browser_start(*, session_id: str) -> None:
    """Start the session's browser and mark it ready; safe to run twice.

    If the session ended while the browser was starting (DELETE, a create that gave up), the
    browser is stopped here, since no stop task will know about it.
    """
    session = BrowserSession.objects.filter(pk=session_id).first()
    if session is None or session.status != SessionStatus.STARTING:
        return
    backend = get_backend()
    display = Display(session.display_width, session.display_height, session.display_scale)
    try:
        routes = _proxy_routes(session)
    except ProxyNotSet as exc:
        logger.warning("session %s: %s", session_id, exc)
        session_browser_start_failed(session_id=session_id, error=str(exc))
        return
    attempt = 1
    while True:
        # Beyond the host's start slots, a start waits while its create still does (the create
        # ends the session at its own budget).
        with _start_slot(backend, wait_seconds=settings.SESSION_CREATE_WAIT_SECONDS,
                         still_wanted=lambda: _still_starting(session_id)) as held:  # fmt: skip
            if not held:
                if _still_starting(session_id):
                    logger.warning("session %s: no browser start slot came free", session_id)
                    session_browser_start_failed(session_id=session_id, error="no start slot came free")
                return
            try:
                handle = backend.start(
                    session_id=session_id, display=display, routes=routes, flavour=session.browser
                )
                break
            except BrowserStartError as exc:
                error = exc
        # Slow down, don't fail: a start that timed out on a saturated host is tried again
        # while its create still waits (the create gives up at its own budget and ends the
        # session; the next attempt then is not made).
        if attempt < settings.BROWSER_START_ATTEMPTS and _still_starting(session_id):
            logger.warning(
                "session %s: browser start failed (%s); attempt %d", session_id, error, attempt + 1
            )
            attempt += 1
            continue
        logger.warning("session %s: browser start failed: %s", session_id, error)
        session_browser_start_failed(session_id=session_id, error=str(error))
        return
    restore = _restore_or_fail(session, handle)
    if restore is None:
        return
    if not restore.ready():
        logger.info("session %s ended while its browser started; stopping it", session_id)
        backend.stop(handle, session_id=session_id)
        session_browser_start_abandoned(session_id=session_id)
        return
    restore.storage()


class ProxyNotSet(Exception):
    """The session's proxy cannot be put in place (text safe to show: no credentials)."""


def _proxy_routes(session: BrowserSession) -> dict[str, Any] | None:
    """The egress route document of the session's proxies, or None when it has none."""
    if session.proxy_config is None:
        return None
    try:
        config = proxies.proxy_config_open(session_id=session.pk, sealed=session.proxy_config)
        return proxies.route_document(session_id=session.pk, config=config)
    except StateSealError:
        raise ProxyNotSet(
            "the session's proxy settings cannot be opened (SAVED_STATE_KEYS changed?)"
        ) from None
    except proxies.ProxyUnavailable as exc:
        raise ProxyNotSet(exc.detail) from None


def _proxy_route_claimed(session: BrowserSession, handle: BrowserLocation) -> None:
    """Put the session's proxy in front of a warm browser it claimed, before its first navigation
    (the pool started it without one). ProxyNotSet when that cannot be done."""
    routes = _proxy_routes(session)
    if routes is None:
        return
    uid = proxy_routes.browser_uid(handle.profile_dir)
    if uid is None:
        raise ProxyNotSet("the warm browser has no sandbox uid of its own")
    try:
        proxy_routes.routes_write(uid=uid, document=routes)
    except OSError as exc:
        raise ProxyNotSet(f"the proxy route could not be written ({exc.strerror})") from None


def _still_starting(session_id: str) -> bool:
    return BrowserSession.objects.filter(pk=session_id, status=SessionStatus.STARTING).exists()


def _start_slot(
    backend: BrowserBackend, *, wait_seconds: float, still_wanted: Callable[[], bool] | None = None
) -> AbstractContextManager[bool]:
    """A start slot of this host for a local start (workers/start_slots.py); a Grid start runs
    on a node the Grid itself schedules."""
    if not isinstance(backend, LocalBackend):
        return nullcontext(True)
    return start_slot(host=backend.host, wait_seconds=wait_seconds, still_wanted=still_wanted)


def session_browser_stop(*, session_id: str) -> None:
    """Free an ended session's browser (processes, profile, Grid slot); safe to run twice."""
    session = BrowserSession.objects.filter(pk=session_id).first()
    if session is None or session.status != SessionStatus.TERMINATED or session.browser_released_at:
        return
    handle = session.location
    forget(handle)
    if saved_states.is_persistent(session):
        # Before the browser goes: its state is saved on every end but a crash or a failed start.
        if session.ended_reason == EndedReason.CRASHED:
            saved_states.saved_state_crashed(session=session)
        elif session.ended_reason != EndedReason.START_FAILED and handle.webdriver_session_id:
            _state_save(session, handle)
    get_backend(session.backend or None).stop(handle, session_id=session_id)
    if session.proxy_config is not None:
        _proxy_bytes_settle(session)
    session_browser_released(session=session)


def proxy_bytes_bill(*, ended_within_seconds: int = 3600, limit: int = 500) -> dict[str, int]:
    """Charge pool bytes as they go (reconcile, every RECONCILE_INTERVAL_SECONDS): live sessions'
    running totals, and ended ones' (a stop whose charge was lost, bytes reported late). Charges
    are keyed by the MB total, so this and the stop never charge a byte twice. A live session
    whose balance cannot cover its bytes ends as credits_exhausted."""
    since = timezone.now() - timedelta(seconds=ended_within_seconds)
    rows = list(
        BrowserSession.objects.filter(proxy_config__isnull=False, options__use_advanced_proxy=True)
        .filter(Q(status__in=LIVE_STATUSES) | Q(ended_at__gte=since))
        .values_list("pk", "status", "proxy_bytes")[:limit]
    )
    if not rows:
        return {"proxy_charged": 0, "proxy_exhausted": 0}
    try:
        totals = get_redis().pipeline(transaction=False)
        for session_id, _, _ in rows:
            totals.hgetall(meter_key(session_id))
        counted = totals.execute()
    except RedisError as exc:
        logger.warning("proxy bytes not read: %s", exc)
        return {"proxy_charged": 0, "proxy_exhausted": 0}
    charged = exhausted = 0
    for (session_id, status, billed), counts in zip(rows, counted, strict=True):
        total, _ = meter_read(counts)
        if total <= billed:
            continue
        charged += 1
        if not session_proxy_bill(session_id=session_id, total_bytes=total) and status in LIVE_STATUSES:
            exhausted += session_terminate(
                session_id=session_id,
                reason=EndedReason.CREDITS_EXHAUSTED,
                error="the credit balance ran out",
            )
    return {"proxy_charged": charged, "proxy_exhausted": exhausted}


def proxy_meter_settled(meter: str) -> int | None:
    """The filter's byte total under `meter`, once its last tunnel has closed (the browser is
    gone, so that is a matter of milliseconds; PROXY_METER_SETTLE_SECONDS at most). None when
    Redis cannot be read (logged): the reconcile charges it later."""
    key = meter_key(meter)
    deadline = time.monotonic() + settings.PROXY_METER_SETTLE_SECONDS
    try:
        redis = get_redis()
        counts = redis.hgetall(key)
        while meter_read(counts)[1] > 0 and time.monotonic() < deadline:
            time.sleep(0.05)
            counts = redis.hgetall(key)
    except RedisError as exc:
        logger.warning("%s: proxy bytes not read: %s", meter, exc)
        return None
    return meter_read(counts)[0]


def _proxy_bytes_settle(session: BrowserSession) -> None:
    """Charge the bytes the session's browser sent through the operator's pool (none for a tenant's
    own proxies): the filter's total once the browser's tunnels have closed."""
    total = proxy_meter_settled(session.pk)
    if total:
        session_proxy_bill(session_id=session.pk, total_bytes=total)


def job_proxy_bytes_bill(*, ended_within_seconds: int = 3600, limit: int = 500) -> int:
    """The reconcile's pass over job browsers of pool jobs (live, or ended within the hour): their
    running totals charged as they go (jobs.services.job_proxy_bill, keyed by the job's MB total,
    so this and the stop never charge a byte twice). A running job whose balance cannot cover its
    bytes ends `credits_exhausted`. Returns how many browsers moved."""
    since = timezone.now() - timedelta(seconds=ended_within_seconds)
    rows = list(
        JobBrowser.objects.filter(job__proxy_config__isnull=False, job__spec__use_advanced_proxy=True)
        .filter(Q(is_live=True) | Q(ended_at__gte=since))
        .values_list("pk", "proxy_bytes", "job_id")[:limit]
    )
    if not rows:
        return 0
    try:
        totals = get_redis().pipeline(transaction=False)
        for browser_id, _, _ in rows:
            totals.hgetall(meter_key(browser_id))
        counted = totals.execute()
    except RedisError as exc:
        logger.warning("job proxy bytes not read: %s", exc)
        return 0
    moved = 0
    for (browser_id, recorded, job_id), counts in zip(rows, counted, strict=True):
        total, _ = meter_read(counts)
        if total > recorded:
            moved += 1
            if not job_proxy_bill(browser_id=browser_id, total_bytes=total):
                job_end_unpaid(job_id=job_id)
    return moved


def _state_save(session: BrowserSession, handle: BrowserLocation) -> None:
    """Export the browser's state and store it as the session's; a failure is recorded on the
    state (status failed, the previous save kept), never raised: the browser must still stop."""
    if saved_states.saved_state_saved_since_end(session=session):
        return  # a stop task that runs twice saves once
    restored = _restore_wait(session.pk)  # a save never reads a half-restored browser
    saved_states.saved_state_save_begin(session=session)
    if not restored:
        logger.warning("session %s: state not saved: its restore never finished", session.pk)
        saved_states.saved_state_save_failed(
            session=session, reason="the state it was created from was never fully restored"
        )
        return
    try:
        state = state_export(
            handle,
            origins=saved_states.saved_state_origins_hint(session=session),
            timeout=settings.SAVED_STATE_TIMEOUT_SECONDS,
        )
    except BrowserError as exc:
        logger.warning("session %s: state not saved: %s", session.pk, exc)
        saved_states.saved_state_save_failed(session=session, reason="the browser could not be read")
        return
    try:
        saved_states.saved_state_store(session=session, state=state)
    except Exception:
        # Never left `saving` (creates from it would wait forever), and the browser must still
        # stop: record the failure, log the kind (never the state), and go on.
        logger.exception("session %s: state not stored", session.pk)
        saved_states.saved_state_save_failed(session=session, reason="the state could not be stored")


def session_state_save_live(*, session_id: str, token: str) -> None:
    """Save a live persistent session's state now; signal `token` when done (or not possible)."""
    try:
        session = BrowserSession.objects.filter(pk=session_id).first()
        if (
            session is not None
            and session.is_live
            and bool(session.webdriver_session_id)
            and saved_states.is_persistent(session)
        ):
            _state_save(session, session.location)
    finally:
        saved_states.saved_state_save_done(session_id=session_id, token=token)


def _restore_or_fail(session: BrowserSession, handle: BrowserLocation) -> _Restore | None:
    """Start putting the state the session restores (`environment_id`) into its new browser: read
    it and import its cookies now, before the session is ready; its origins' storage after
    (`_Restore.storage`), behind the session's action lock so that no action (hence no page of
    the session) runs before it is in. On failure the browser is stopped and the session ends
    as start_failed (refunded): None."""
    started = time.perf_counter()
    try:
        state = saved_states.saved_state_load(session=session)
        if state is None:
            return _Restore(session, handle, None, None)
        loaded = time.perf_counter()
        lock = _storage_lock(session.pk) if state_has_storage(state) else None
        try:
            # Without the lock (Redis away) the storage goes in now, before ready, as before.
            phases = state_import(
                handle, state, timeout=settings.SAVED_STATE_TIMEOUT_SECONDS, storage=lock is None
            )
        except BaseException:
            _storage_unlock(session.pk, lock)
            raise
    except (saved_states.EnvironmentRestoreFailed, BrowserError) as exc:
        _restore_failed(session, handle, exc)
        return None
    # Operators (and bench/saved_state.py) read what a restore costs from this line.
    logger.info(
        "session %s: saved state restored in %.0f ms (read %.0f ms, import %.0f ms: %s)",
        session.pk,
        (time.perf_counter() - started) * 1000,
        (loaded - started) * 1000,
        (time.perf_counter() - loaded) * 1000,
        _phases_text(phases) + ("; storage after ready" if lock is not None else ""),
    )
    return _Restore(session, handle, state if lock is not None else None, lock)


def _phases_text(phases: dict[str, float]) -> str:
    return ", ".join(f"{name} {ms:.0f}" for name, ms in phases.items()) or "nothing"


def _restore_failed(session: BrowserSession, handle: BrowserLocation, exc: Exception) -> None:
    logger.warning("session %s: %s: %s", session.pk, saved_states.RESTORE_FAILED, exc)
    get_backend(handle.backend).stop(handle, session_id=session.pk)
    session_browser_start_failed(
        session_id=session.pk, error=f"{saved_states.RESTORE_FAILED}: {_restore_reason(exc)}"
    )


def _storage_lock(session_id: str) -> Lock | None:
    """The session's action lock (workers/action_runner.py) and the restoring mark, taken before
    the session is ready: its first action waits for the storage restore. None if Redis fails
    (the caller then restores the storage before ready)."""
    ttl = 2 * settings.SAVED_STATE_TIMEOUT_SECONDS + 10  # the cookies' import, then the storage's
    lock: Lock = get_redis().lock(lock_key(session_id), timeout=ttl, blocking=False, thread_local=False)
    try:
        if not lock.acquire(blocking=False):
            return None  # nobody acts on a session before it is ready; be safe anyway
        # Outlives the lock: a drain that takes the lock of a lost restore finds it (action_runner).
        get_redis().set(restoring_key(session_id), "1", ex=RESTORING_MARK_SECONDS)
    except RedisError as exc:
        logger.warning(
            "session %s: no action lock for the restore (%s); restoring before ready", session_id, exc
        )
        return None
    return lock


def _storage_unlock(session_id: str, lock: Lock | None) -> None:
    if lock is None:
        return
    try:
        get_redis().delete(restoring_key(session_id))
        lock.release()
    except (RedisError, LockError) as exc:
        logger.warning("session %s: restore lock release: %s", session_id, exc)


class _Restore:
    """What is left of a restore once the session is ready: the origins' storage."""

    def __init__(
        self,
        session: BrowserSession,
        handle: BrowserLocation,
        state: dict[str, Any] | None,
        lock: Lock | None,
    ) -> None:
        self.session, self.handle, self.state, self.lock = session, handle, state, lock

    def ready(self) -> bool:
        """Mark the session ready (session_browser_ready); False if it ended meanwhile, and then
        nothing more is restored (nor on an error: the lock is not left behind)."""
        try:
            ready = session_browser_ready(session=self.session, location=self.handle)
        except BaseException:
            _storage_unlock(self.session.pk, self.lock)
            raise
        if not ready:
            _storage_unlock(self.session.pk, self.lock)
        return ready

    def storage(self, *, drain_here: bool = False, before_drain: Callable[[], None] | None = None) -> None:
        """The origins' storage, into the ready session's browser, before any of its actions run
        (they wait for the lock); then its queued actions run: here (`drain_here`, when this runs
        on the actions queue: no hand-off to another task) or in a task of their own. A browser
        that does not take it ends the session as start_failed (refunded, error "environment
        restore failed: ...")."""
        if self.state is None or self.lock is None:
            return
        session_id = self.session.pk
        started = time.perf_counter()
        try:
            phases = state_import(
                self.handle, self.state, timeout=settings.SAVED_STATE_TIMEOUT_SECONDS, cookies=False
            )
        except BrowserError as exc:
            # (A session ended meanwhile, its browser stopped, is not ended twice.)
            logger.warning("session %s: %s: %s", session_id, saved_states.RESTORE_FAILED, exc)
            session_terminate(
                session_id=session_id,
                reason=EndedReason.START_FAILED,
                error=f"{saved_states.RESTORE_FAILED}: {_restore_reason(exc)}",
            )
        else:
            logger.info(
                "session %s: saved state storage restored in %.0f ms after ready (%s)",
                session_id,
                (time.perf_counter() - started) * 1000,
                _phases_text(phases),
            )
        finally:
            _storage_unlock(session_id, self.lock)
        if before_drain is not None:
            before_drain()
        if action_has_queued(session_id=session_id):
            # Their drain found the lock taken and returned. (After a failure: it cancels them.)
            if drain_here:
                actions_drain(session_id=session_id)
            else:
                dispatch.actions_run(session_id)


def _restore_wait(session_id: str) -> bool:
    """A save waits (bounded) for the session's storage restore still under way; False if it is
    still not done (a slow or lost restore): then nothing is saved."""
    deadline = time.monotonic() + settings.SAVED_STATE_TIMEOUT_SECONDS
    try:
        while get_redis().exists(restoring_key(session_id)):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
    except RedisError:
        return True  # no mark can be read: as a restore that went in before ready
    return True


def _restore_reason(exc: Exception) -> str:
    # What the tenant may read: never a DevTools URL or a socket error.
    if isinstance(exc, saved_states.EnvironmentRestoreFailed):
        return exc.detail
    return "the browser did not accept the saved state"


def session_browser_adopt(*, session_id: str) -> None:
    """Make the warm browser a create claimed the session's: apply its display, mark it ready.

    Runs on the browser's host (its actions worker). A warm browser that died in the pool is
    stopped and the session falls back to a cold start on the same host.
    """
    session = BrowserSession.objects.filter(pk=session_id).first()
    if session is None:
        return
    # The claim did not refill the pool of a session that restores a state: a Chromium start
    # beside the restore would take the CPU it needs. Sent here once the state is in (or not).
    restores = bool(saved_states.restores_from(session))
    refill = _Once(lambda: dispatch.pool_refill(session.host, expires=60) if restores else None)
    try:
        _adopt(session, refill)
    finally:
        refill()


def _adopt(session: BrowserSession, refill: Callable[[], None]) -> None:
    session_id = session.pk
    if session.status != SessionStatus.STARTING or not session.webdriver_session_id:
        return
    handle = session.location
    display = Display(session.display_width, session.display_height, session.display_scale)
    try:
        _proxy_route_claimed(session, handle)
        prepare_first_tab(handle.webdriver_url, handle.webdriver_session_id, display)
    except (BrowserError, ProxyNotSet) as exc:
        logger.warning("session %s: its warm browser failed (%s); starting a new one", session_id, exc)
        get_backend(handle.backend).stop(handle, session_id=session_id)
        dispatch.browser_start(session_id, host=session.host)
        return
    restore = _restore_or_fail(session, handle)
    if restore is None:
        return
    if not restore.ready():
        # Ended meanwhile: its row names this browser, so its stop task frees it.
        session_browser_start_abandoned(session_id=session_id)
        return
    restore.storage(drain_here=True, before_drain=refill)  # adopt runs on the actions queue


class _Once:
    """Calls `call` the first time it is called, then nothing."""

    def __init__(self, call: Callable[[], object]) -> None:
        self._call: Callable[[], object] | None = call

    def __call__(self) -> None:
        call, self._call = self._call, None
        if call is not None:
            call()


def _warm_browsers_stop(backend: LocalBackend, taken: list[WarmBrowser]) -> None:
    for warm in taken:
        backend.stop(warm.location, session_id=warm.pk)


def pool_sizes() -> dict[str, int]:
    """This host's warm pool size per flavour (none on the Grid backend)."""
    if settings.BROWSER_BACKEND != "local":
        return {}
    return {CHROMIUM: settings.BROWSER_POOL_SIZE, HEADLESS_SHELL: settings.BROWSER_POOL_SIZE_HEADLESS_SHELL}


def pool_refill(*, host: str) -> int:
    """Recycle this host's pool browsers past BROWSER_POOL_MAX_AGE_SECONDS and start the ones its
    pools lack, full Chromium's first, then the headless shell's (within BROWSERS_PER_HOST, which
    both share); return how many started."""
    if host != settings.WORKER_HOST or settings.BROWSER_BACKEND != "local":
        return 0
    backend = LocalBackend()
    old = timezone.now() - timedelta(seconds=settings.BROWSER_POOL_MAX_AGE_SECONDS)
    _warm_browsers_stop(backend, placement.warm_browsers_take(host=host, older_than=old))
    started = 0
    for flavour, size in pool_sizes().items():
        if not size:
            continue
        reserved = placement.warm_browsers_reserve(
            host=host, pool_size=size, capacity=settings.BROWSERS_PER_HOST, flavour=flavour
        )
        done, yielded = _pool_start(backend, host, reserved, flavour)
        started += done
        if yielded:
            break
    return started


def _pool_start(backend: LocalBackend, host: str, reserved: list[str], flavour: str) -> tuple[int, bool]:
    """Start the reserved pool browsers of `flavour`; (how many started, whether the rest yielded)."""
    started = 0
    for index, pool_id in enumerate(reserved):
        if _creates_waiting(host):
            # Refills yield to user creates: the rest is given back, and the next heartbeat asks
            # again once the host's starts are done.
            placement.warm_browsers_take(host=host, ids=reserved[index:])
            logger.info("pool refill on %s: %d starts yield to creates", host, len(reserved[index:]))
            return started, True
        # A refill never waits for a start slot: the starts that hold them are creates' or
        # jobs'; the rest is given back and the next heartbeat asks again.
        with _start_slot(backend, wait_seconds=0) as held:
            if not held:
                placement.warm_browsers_take(host=host, ids=reserved[index:])
                logger.info("pool refill on %s: %d starts yield to other starts", host, len(reserved[index:]))
                return started, True
            try:
                handle = backend.start(session_id=pool_id, display=Display(), flavour=flavour)
            except BrowserStartError as exc:
                logger.warning("pool browser %s (%s) did not start: %s", pool_id, flavour, exc)
                placement.warm_browsers_take(host=host, ids=[pool_id])
                continue
        if placement.warm_browser_ready(pool_id=pool_id, location=handle):
            started += 1
        else:
            backend.stop(handle, session_id=pool_id)  # forgotten while it started
    return started, False


def _creates_waiting(host: str) -> bool:
    """A session of this host (or not placed yet) waits for its browser to start."""
    return (
        BrowserSession.objects.filter(status=SessionStatus.STARTING, webdriver_session_id="")
        .filter(Q(host=host) | Q(host=""))
        .exists()
    )


def pool_forget(*, host: str) -> None:
    """This host's worker stops: stop its pool browsers (sessions' browsers stay up)."""
    backend = LocalBackend()
    _warm_browsers_stop(backend, placement.warm_browsers_take(host=host))
    # Pool browsers whose rows were forgotten meanwhile (never a claimed one: a live session
    # names its directory).
    backend.kill_orphans_of(_live_browser_names, prefix=WARM_BROWSER_ID_PREFIX)


def _live_browser_names() -> set[str]:
    """Ids in the profile paths of browsers that must live: live sessions (a claimed warm
    browser keeps its pool id in its paths), pool rows and batch jobs' browsers (`job-...`).

    The pool rows are read first: a create that claims a warm browser deletes its row and writes
    the session (with the browser's path) in one commit, so whichever side of that commit each
    read falls on, one of them names the browser. Read the other way round, a claim committed
    between the two reads was in neither, and reconcile killed the new session's browser."""
    names: set[str] = set(WarmBrowser.objects.values_list("pk", flat=True))
    for session_id, profile_dir in BrowserSession.objects.filter(status__in=LIVE_STATUSES).values_list(
        "pk", "profile_dir"
    ):
        names.add(session_id)
        if profile_dir:
            names.add(Path(profile_dir).name)
    # An ended persistent session's browser lives until its stop task has saved its state.
    for session_id, profile_dir in BrowserSession.objects.filter(
        status=SessionStatus.TERMINATED, browser_released_at__isnull=True, options__persistent=True
    ).values_list("pk", "profile_dir"):
        names.add(session_id)
        if profile_dir:
            names.add(Path(profile_dir).name)
    names |= live_job_browser_ids()
    return names


def _end_if_gone(session_ids: list[str]) -> int:
    crashed = 0
    for session_id in session_ids:
        session = BrowserSession.objects.filter(pk=session_id).first()
        if session is None or session.status not in (SessionStatus.READY, SessionStatus.RUNNING):
            continue
        if not get_backend(session.backend).is_alive(session.location):
            logger.warning("session %s: browser is gone; ending it as crashed", session_id)
            crashed += session_terminate(
                session_id=session_id, reason=EndedReason.CRASHED, error="the browser exited"
            )
    return crashed


def host_reconcile(*, host: str) -> dict[str, int]:
    """On `host`: end its sessions whose browser is gone (crashed), replace dead pool browsers,
    kill browsers that belong to no live session or pool row, and top the pool up."""
    if host != settings.WORKER_HOST:
        return {}
    backend = LocalBackend()
    crashed = _end_if_gone(
        list(
            BrowserSession.objects.filter(status__in=LIVE_STATUSES, host=host, backend="local")
            .exclude(webdriver_session_id="")
            .values_list("pk", flat=True)
        )
    )
    stale_start = timezone.now() - timedelta(seconds=settings.BROWSER_START_TIMEOUT_SECONDS + 30)
    dead_pool = [
        w.pk
        for w in placement.warm_browsers_of(host=host)
        if (w.state == WarmBrowserState.READY and not backend.is_alive(w.location))
        or (w.state == WarmBrowserState.STARTING and w.created_at < stale_start)
    ]
    if dead_pool:
        logger.warning("pool browsers gone on %s, replacing them: %s", host, dead_pool)
        _warm_browsers_stop(backend, placement.warm_browsers_take(host=host, ids=dead_pool))
    killed = backend.kill_orphans_of(_live_browser_names)
    if killed:
        logger.warning("killed %d browsers that belonged to no live session: %s", len(killed), killed)
    if any(pool_sizes().values()):
        dispatch.pool_refill(host, expires=settings.RECONCILE_INTERVAL_SECONDS)
    # This host's egress filter (one per host, like its browsers).
    try:
        egress.ensure_ready()
        egress_down = 0
    except BrowserStartError as exc:
        # Running browsers cannot go around it (no direct route), but none can start: an operator
        # must know. Its supervisor (bin/dev serve, compose's restart policy) brings it back.
        logger.error("reconcile: %s", exc)
        egress_down = 1
    return {
        "crashed": crashed,
        "orphans_killed": len(killed),
        "pool_replaced": len(dead_pool),
        "egress_down": egress_down,
    }


def browsers_reconcile() -> dict[str, int]:
    """Compare rows with real browsers, fleet-wide (Beat, on any lifecycle worker).

    Hosts that stopped heartbeating are forgotten (their sessions end as crashed); every live
    host reconciles its own local browsers (host_reconcile, on its queue); Grid sessions are
    checked here; an ended session whose stop task was lost gets another one.
    """
    backend = get_backend()
    forgotten = hosts_dead_reap()
    alive = [h.name for h in placement.hosts_alive()]
    for host in alive:
        dispatch.host_reconcile(host, expires=settings.RECONCILE_INTERVAL_SECONDS)
    crashed = _end_if_gone(
        list(
            BrowserSession.objects.filter(status__in=LIVE_STATUSES, backend="grid")
            .exclude(webdriver_session_id="")
            .values_list("pk", flat=True)
        )
    )
    killed: list[str] = []
    if backend.name == "grid":
        # Re-read: sessions may have started or ended while we checked.
        live = BrowserSession.objects.filter(status__in=LIVE_STATUSES)
        killed = backend.kill_orphans(
            live_session_ids=set(live.values_list("pk", flat=True)) | live_job_browser_ids(),
            live_webdriver_ids=set(
                live.exclude(webdriver_session_id="").values_list("webdriver_session_id", flat=True)
            )
            | live_job_webdriver_ids(),
        )
        if killed:
            logger.warning(
                "killed %d Grid sessions that belonged to no live session: %s", len(killed), killed
            )
    elif not alive:
        # No host heartbeats (a worker without a host queue): this machine's browsers, here.
        result = host_reconcile(host=settings.WORKER_HOST)
        crashed += result.get("crashed", 0)
    proxies_billed = proxy_bytes_bill()
    proxies_billed["proxy_job_browsers"] = job_proxy_bytes_bill()
    lost_stops = list(
        BrowserSession.objects.filter(
            status=SessionStatus.TERMINATED,
            browser_released_at__isnull=True,
            ended_at__lte=timezone.now() - timedelta(seconds=settings.RECONCILE_INTERVAL_SECONDS),
        ).values_list("pk", "host", "backend")[:500]
    )
    for session_id, host, backend_name in lost_stops:
        if alive and host and backend_name != "grid" and host not in alive:
            # Its host was forgotten (dead): the browser went with it, nobody consumes its queue.
            session = BrowserSession.objects.filter(pk=session_id).first()
            if session is not None:
                session_browser_released(session=session)
            continue
        dispatch.browser_stop(session_id, host=host, backend=backend_name)
    return {
        "crashed": crashed,
        "orphans_killed": len(killed),
        "stops_requeued": len(lost_stops),
        "hosts_forgotten": len(forgotten),
        **proxies_billed,
    }


def host_shutdown(*, host: str, orphans: bool = False) -> dict[str, int]:
    """The service on `host` stops for good (not a worker restart): end its live sessions
    (`shutdown`; their time is billed to this moment) and stop their browsers here and now, the
    workers may be gone already; stop its pool browsers. With `orphans`, then kill every browser
    left under this host's profile root (batch jobs' too: their pages are taken up again later).
    """
    backend = LocalBackend()
    live = BrowserSession.objects.filter(status__in=LIVE_STATUSES, backend__in=("local", "")).filter(
        Q(host=host) | Q(host="")
    )
    ended = stopped = 0
    for session_id in list(live.values_list("pk", flat=True)):
        try:
            ended += session_terminate(session_id=session_id, reason=EndedReason.SHUTDOWN)
        except Exception as exc:  # the broker may be gone: the stop below does not need it
            if not is_outage(exc):
                raise
        session_browser_stop(session_id=session_id)
        stopped += 1
    _warm_browsers_stop(backend, placement.warm_browsers_take(host=host))
    killed = backend.kill_orphans_of(set if orphans else _live_browser_names)
    return {"ended": ended, "stopped": stopped, "killed": len(killed)}
