"""The worker side of batch jobs: a job browser working through its job's pages.

One Celery task per job browser runs a slice: it claims the next page (jobs.services.item_claim),
loads and scrapes it in the browser, records the outcome (which charges the page once), and goes
on with the next, reusing the browser. After JOB_TASK_SLICE_SECONDS it queues itself again and
returns, keeping the browser (its handle is on the row), so that a long job never holds a
worker process for long and other jobs get their turn. A heartbeat thread renews the browser's
lease and the current page's, so a worker that dies loses its pages back to the queue.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict
from typing import Any

from django.conf import settings
from django.db import connection
from redis.exceptions import RedisError

from jobs import services as jobs
from jobs.models import Job, JobBrowser, JobItem, JobStatus
from jobs.screenshots import job_screenshot_save
from project.redis import get_redis
from sessions import proxies
from sessions.location import CHROMIUM, BrowserLocation
from sessions.saved_state import EnvironmentRestoreFailed, saved_state_read
from sessions.state_crypto import StateSealError
from workers.browser import BrowserError, BrowserGone, BrowserStartError, Display, get_backend
from workers.browser.job_page import JobPageBrowser, PageVisit
from workers.browser.local import LocalBackend
from workers.browser.saved_state import state_import
from workers.egress.metering import proxy_errors_key
from workers.error_text import tenant_error_text
from workers.services import proxy_meter_settled
from workers.start_slots import lease_seconds, start_slot

logger = logging.getLogger(__name__)


def job_browser_stop(*, browser_id: str, handle: BrowserLocation) -> None:
    """Stop a job browser and free everything it held (its route file goes with its uid); safe to
    call twice. A browser of a pool job then has its bytes charged (the filter's total once its
    tunnels have closed)."""
    if handle.webdriver_session_id:
        get_backend(handle.backend or None).stop(handle, session_id=browser_id)
    jobs.job_browser_released(browser_id=browser_id)
    job = Job.objects.filter(browsers__pk=browser_id).only("pk", "spec", "proxy_config").first()
    if job is not None and jobs.job_uses_pool(job):
        total = proxy_meter_settled(browser_id)
        if total:
            jobs.job_proxy_bill(browser_id=browser_id, total_bytes=total)


class ProxyNotSet(BrowserStartError):
    """The job's proxy cannot be put in place (text safe to show: no credentials)."""


def job_routes(job: Job, browser_id: str) -> dict[str, Any] | None:
    """The egress route document of a job browser (sessions/proxies.py), or None without proxies:
    the job's sealed configuration, metered and reported under the browser's own id."""
    if job.proxy_config is None:
        return None
    try:
        config = proxies.proxy_config_open(session_id=job.pk, sealed=job.proxy_config)
        return proxies.route_document(session_id=job.pk, config=config, meter=browser_id, report=browser_id)
    except StateSealError:
        raise ProxyNotSet("the job's proxy settings cannot be opened (SAVED_STATE_KEYS changed?)") from None
    except proxies.ProxyUnavailable as exc:
        raise ProxyNotSet(exc.detail) from None


def proxy_failures(browser_id: str) -> int | None:
    """How many connections of this browser an upstream proxy failed so far (the egress filter's
    report, written before the browser hears of the failure); None when Redis cannot tell."""
    try:
        return int(get_redis().get(proxy_errors_key(browser_id)) or 0)
    except RedisError as exc:
        logger.warning("job browser %s: proxy failures not read: %s", browser_id, exc)
        return None


class _Heartbeat:
    """Renews the browser's lease and the current page's while a page takes its time."""

    def __init__(self, browser_id: str) -> None:
        self.browser_id = browser_id
        self.item_id: int | None = None
        self.alive = True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{browser_id}", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        interval = max(1.0, settings.JOB_ITEM_LEASE_SECONDS / 3)
        try:
            while not self._stop.wait(interval):
                try:
                    self.alive = jobs.job_browser_renew(browser_id=self.browser_id, item_id=self.item_id)
                except Exception:  # a database blip: the next beat tries again
                    logger.exception("job browser %s: heartbeat failed", self.browser_id)
        finally:
            connection.close()  # this thread's own connection


class _Browser:
    """The job browser process: started on demand, restarted after a crash or N pages."""

    def __init__(
        self,
        row: JobBrowser,
        page_timeout: int,
        environment: tuple[int, str] | None = None,
        routes: dict[str, Any] | ProxyNotSet | None = None,
        flavour: str = CHROMIUM,
    ) -> None:
        self.id = row.pk
        # The job's upstream proxies (an egress route document), None, or why they cannot be set.
        self.routes = routes
        self.flavour = flavour  # full Chromium or the headless shell (the job's `browser`)
        self.environment = environment  # (account id, environment id): a saved state to start with
        self.page_timeout = page_timeout
        self.backend = get_backend()
        self.handle: BrowserLocation | None = None
        self.page: JobPageBrowser | None = None
        self.pages = row.pages_on_browser
        self.start_failed = False
        if row.webdriver_session_id:
            handle = row.location
            same_machine = handle.backend != "local" or handle.host == getattr(self.backend, "host", None)
            if same_machine and get_backend(handle.backend).is_alive(handle):
                self.handle = handle
            elif same_machine:
                job_browser_stop(browser_id=self.id, handle=handle)

    def ready(self) -> JobPageBrowser:
        if self.page is None:
            if self.handle is None:
                handle = self._start()
                if not jobs.job_browser_attached(browser_id=self.id, location=handle):
                    self.backend.stop(handle, session_id=self.id)
                    raise BrowserGone("the job browser was ended while it started")
                if self.environment is not None:
                    self._restore(handle, *self.environment)
                self.handle = handle
                self.pages = 0
            self.page = JobPageBrowser(self.handle, page_timeout=self.page_timeout)
        return self.page

    def _start(self) -> BrowserLocation:
        """A local start takes one of the host's start slots (workers/start_slots.py), waiting up
        to a start's own bound: every slot held is given back within it."""
        if isinstance(self.routes, ProxyNotSet):
            raise self.routes
        if not isinstance(self.backend, LocalBackend):
            return self.backend.start(
                session_id=self.id, display=Display(), routes=self.routes, flavour=self.flavour
            )
        with start_slot(host=self.backend.host, wait_seconds=lease_seconds()) as held:
            if not held:
                raise BrowserStartError("no browser start slot came free on this host")
            return self.backend.start(
                session_id=self.id, display=Display(), routes=self.routes, flavour=self.flavour
            )

    def _restore(self, handle: BrowserLocation, account_id: int, environment_id: str) -> None:
        """The job's saved state, read-only (never saved back); a browser that refuses it is stopped."""
        try:
            state_import(
                handle,
                saved_state_read(account_id=account_id, environment_id=environment_id),
                timeout=settings.SAVED_STATE_TIMEOUT_SECONDS,
            )
        except (EnvironmentRestoreFailed, BrowserError) as exc:
            job_browser_stop(browser_id=self.id, handle=handle)
            raise BrowserGone(f"the saved state did not restore: {type(exc).__name__}") from exc

    def restart(self) -> None:
        self.stop()

    def stop(self) -> None:
        if self.page is not None:
            self.page.close()
            self.page = None
        if self.handle is not None:
            job_browser_stop(browser_id=self.id, handle=self.handle)
            self.handle = None

    def detach(self) -> None:
        """Leave the browser running for the next slice."""
        if self.page is not None:
            self.page.close()
            self.page = None


def job_browser_work(*, browser_id: str) -> bool:
    """Work one slice for this job browser; True if it should run again (queued by the caller)."""
    row = JobBrowser.objects.filter(pk=browser_id).first()
    if row is None:
        return False
    if not row.is_live:
        if row.webdriver_session_id and row.browser_released_at is None:
            job_browser_stop(browser_id=browser_id, handle=row.location)
        return False
    job = Job.objects.filter(pk=row.job_id).only("pk", "spec", "status", "account_id", "proxy_config").first()
    if job is None or job.status != JobStatus.RUNNING:
        _end(row, None)
        return False
    spec = job.spec
    # Working now: from here a lost worker is noticed within JOB_BROWSER_LEASE_SECONDS.
    if not jobs.job_browser_renew(browser_id=browser_id, item_id=None):
        _end(row, None)  # ended since we looked
        return False
    environment_id = str(spec.get("environment_id") or "")
    routes: dict[str, Any] | ProxyNotSet | None
    try:
        routes = job_routes(job, browser_id)
    except ProxyNotSet as exc:
        # Never direct: no browser starts, its pages fail `browser_start_failed` (not charged).
        logger.error("job %s: %s", job.pk, exc)
        routes = exc
    browser = _Browser(
        row,
        page_timeout=int(spec.get("page_timeout_seconds") or 30),
        environment=(job.account_id, environment_id) if environment_id else None,
        routes=routes,
        # Jobs submitted before flavours existed ran full Chromium.
        flavour=str(spec.get("browser") or CHROMIUM),
    )
    deadline = time.monotonic() + settings.JOB_TASK_SLICE_SECONDS
    again = False
    with _Heartbeat(browser_id) as heartbeat:
        try:
            while heartbeat.alive:
                if time.monotonic() > deadline:
                    again = True
                    break
                claim = jobs.item_claim(job_id=job.pk, browser_id=browser_id)
                if claim.state == "wait":
                    time.sleep(claim.wait_seconds)
                    continue
                if claim.state != "claimed" or claim.item is None:
                    break
                heartbeat.item_id = claim.item.pk
                try:
                    visit = _visit(browser, claim.item, spec)
                finally:
                    heartbeat.item_id = None
                jobs.item_record(
                    item_id=claim.item.pk, job_id=job.pk, browser_id=browser_id, outcome=_outcome(visit)
                )
                browser.pages += 1
                if browser.start_failed:
                    break  # the page goes back to the queue; the next tick tries another browser
                if browser.pages >= settings.JOB_BROWSER_RECYCLE_PAGES:
                    browser.restart()  # a fresh process: bounds what a long job's browser accumulates
        finally:
            if again:
                browser.detach()
            else:
                browser.stop()
                jobs.job_browser_end(browser_id=browser_id, released=True)
    if again:
        # After the heartbeat stopped: the task waits in the queue behind other jobs' browsers.
        if jobs.job_browser_renew(
            browser_id=browser_id, item_id=None, seconds=settings.JOB_BROWSER_QUEUED_LEASE_SECONDS
        ):
            return True
        browser.stop()  # ended meanwhile (cancel, job over)
    jobs.job_finish_if_done(job_id=job.pk)
    return False


def _end(row: JobBrowser, browser: _Browser | None) -> None:
    if browser is not None:
        browser.stop()
    elif row.webdriver_session_id and row.browser_released_at is None:
        job_browser_stop(browser_id=row.pk, handle=row.location)
    jobs.job_browser_end(browser_id=row.pk, released=True)


def _visit(browser: _Browser, item: JobItem, spec: dict[str, object]) -> PageVisit:
    """Load and scrape one page. The error text is what the tenant reads (results, webhooks):
    failures of our own browsers say what happened, the details stay in our log, and any text
    that came from the driver has its address and session id replaced (tenant_error_text)."""
    failures_before = proxy_failures(browser.id) if browser.routes is not None else None
    try:
        page = browser.ready()
        visit = page.visit(
            item.url,
            scrape=dict(spec.get("scrape") or {}),  # type: ignore[call-overload]
            wait_for=spec.get("wait_for") or None,  # type: ignore[arg-type]
            screenshot=bool(spec.get("screenshot")),
        )
    except BrowserStartError as exc:
        logger.warning("job browser %s could not start: %s", browser.id, exc)
        browser.start_failed = True
        return PageVisit(
            ok=False,
            transient=True,
            error_code="browser_start_failed",
            error_message="The browser for this page could not be started.",
        )
    except BrowserGone as exc:
        logger.warning("job browser %s is gone (%s); starting another", browser.id, exc)
        browser.restart()
        return PageVisit(
            ok=False,
            transient=True,
            error_code="browser_crashed",
            error_message="The browser stopped while it worked on this page.",
        )
    except BrowserError as exc:
        # Something between us and the page (a script timeout, a busy driver): ours, not billed.
        logger.warning("job browser %s: %s", browser.id, exc)
        return PageVisit(
            ok=False,
            transient=True,
            error_code="browser_error",
            error_message="The browser did not answer in time while it worked on this page.",
        )
    if (
        failures_before is not None
        and not visit.ok
        and visit.error_code in PROXY_SHAPED
        and (proxy_failures(browser.id) or 0) > failures_before
    ):
        logger.info("job browser %s: an upstream proxy failed the page", browser.id)
        return PageVisit(
            ok=False,
            transient=True,
            error_code=jobs.PROXY_FAILURE,
            error_message=(
                "The upstream proxy failed for this page (unreachable, refused the tunnel, or "
                "asked for other credentials)."
            ),
        )
    if visit.error_message and browser.handle is not None:
        visit.error_message = tenant_error_text(
            visit.error_message,
            webdriver_url=browser.handle.webdriver_url,
            webdriver_session_id=browser.handle.webdriver_session_id,
        )
    return visit


# How a page fails when its connection did not get through: one the egress filter reported as an
# upstream proxy's failure meanwhile is `proxy_error` (docs/proxies.md).
PROXY_SHAPED = frozenset({"connection_error", "timeout"})


def _outcome(visit: PageVisit) -> jobs.PageOutcome:
    fields = asdict(visit)
    png = fields.pop("screenshot_png")
    shot = job_screenshot_save(png) if png else ""
    return jobs.PageOutcome(**fields, screenshot=shot)
