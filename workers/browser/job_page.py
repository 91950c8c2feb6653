"""One page of a batch job in a job's own browser: load, check, wait, scrape, screenshot.

A job browser works through many pages one after the other, so this keeps its own driver (not
the per-process cache of session drivers) with a read timeout above the job's page timeout, and
reports each page as a `PageVisit`: what happened and whether it is worth another try. Like the
action executor, no Selenium exception leaves this module; a browser that is gone raises
BrowserGone so that the caller starts another.
"""

from __future__ import annotations

import contextlib
import email.utils
import time
from dataclasses import dataclass
from typing import Any

import urllib3
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.remote.remote_connection import RemoteConnection

from sessions.location import BrowserLocation
from workers.browser import page_scripts
from workers.browser.base import Display
from workers.browser.driver import AttachedDriver, EgressRefused
from workers.browser.errors import BrowserError, BrowserGone
from workers.browser.executor.failures import from_webdriver
from workers.browser.executor.page import SCRAPE_MAX_CHARS, SCRAPE_MAX_LIST_ITEMS

# HTTP answers worth another try (Scrapy's RETRY_HTTP_CODES, with 429).
TRANSIENT_HTTP = {408, 429, 500, 502, 503, 504, 522, 524}

# Everything after the load in one script, and the Retry-After probe: scripts/job_*.js.
_AFTER_LOAD = page_scripts.JOB_AFTER_LOAD
_RETRY_AFTER = page_scripts.JOB_RETRY_AFTER


@dataclass
class PageVisit:
    ok: bool
    transient: bool = False  # worth another try
    chargeable: bool = False  # the page loaded and was processed, or the failure is the target's
    http_status: int | None = None
    final_url: str = ""
    data: Any = None
    screenshot_png: bytes | None = None
    error_code: str = ""
    error_message: str = ""
    retry_after: float | None = None


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    with contextlib.suppress(TypeError, ValueError):
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    return None


class JobPageBrowser:
    """A driver attached to a job browser, set up for pages of `page_timeout` seconds."""

    def __init__(self, handle: BrowserLocation, *, page_timeout: int, display: Display | None = None) -> None:
        self.handle = handle
        self.display = display or Display()
        self.page_timeout = page_timeout
        self.driver = AttachedDriver(
            webdriver_url=handle.webdriver_url, webdriver_session_id=handle.webdriver_session_id
        )
        # The browser times the page out first; the client waits a little longer for its answer.
        executor = self.driver.command_executor
        assert isinstance(executor, RemoteConnection)  # AttachedDriver always builds one
        # Selenium passes the timeout to urllib3 as is; a Timeout object splits connect from read.
        executor._client_config.timeout = urllib3.Timeout(connect=5.0, read=float(page_timeout + 15))
        self._call(lambda: self.driver.set_page_load_timeout(page_timeout))
        self._call(lambda: self.driver.set_script_timeout(25))

    def close(self) -> None:
        close = getattr(self.driver.command_executor, "close", None)
        if close is not None:
            close()

    def _call(self, fn: Any) -> Any:
        try:
            return fn()
        except WebDriverException as exc:
            error = from_webdriver(exc, self.handle)
            raise error from exc
        except urllib3.exceptions.HTTPError as exc:
            raise BrowserGone(f"The job browser's driver does not answer: {exc}") from exc

    def visit(
        self, url: str, *, scrape: dict[str, Any], wait_for: dict[str, Any] | None, screenshot: bool
    ) -> PageVisit:
        """Raises BrowserGone when the browser died (the page is not the cause: retry it)."""
        try:
            self.driver.get(url)
        except EgressRefused as exc:
            # A redirect to, or a name that now resolves to, an address browsers may not reach:
            # the egress filter answered instead of the site. Final, and not charged.
            return PageVisit(ok=False, error_code=exc.error_code, error_message=str(exc.msg or exc))
        except TimeoutException:
            return PageVisit(
                ok=False,
                transient=True,
                error_code="timeout",
                error_message=f"The page did not finish loading within {self.page_timeout} s.",
            )
        except WebDriverException as exc:
            error = from_webdriver(exc, self.handle)
            if isinstance(error, BrowserGone):
                raise error from exc
            return PageVisit(
                ok=False, transient=True, error_code="connection_error", error_message=str(error)
            )
        except urllib3.exceptions.HTTPError as exc:
            raise BrowserGone(f"The job browser's driver does not answer: {exc}") from exc
        options = {
            "schema": scrape.get("schema") or None,
            "format": scrape.get("format") or ("none" if scrape.get("schema") else "markdown"),
            "selector": scrape.get("selector") or None,
            "maxChars": SCRAPE_MAX_CHARS,
            "maxItems": SCRAPE_MAX_LIST_ITEMS,
        }
        waiting = (
            {"selector": wait_for["selector"], "timeout_ms": int(wait_for.get("timeout_ms", 10_000))}
            if wait_for
            else None
        )
        page = dict(self._call(lambda: self.driver.execute_script(_AFTER_LOAD, options, waiting)))
        final_url = str(page.get("url") or "")
        if final_url.startswith("chrome-error://"):
            return PageVisit(
                ok=False,
                transient=True,
                error_code="connection_error",
                error_message=f"Could not load {url}: {page.get('errorCode') or 'the page failed to load'}",
            )
        status = page.get("status")
        status = int(status) if isinstance(status, int | float) else None
        if status is not None and status >= 400:
            retry_after = None
            if status in (429, 503):
                retry_after = parse_retry_after(self._call(lambda: self.driver.execute_script(_RETRY_AFTER)))
            return PageVisit(
                ok=False,
                transient=status in TRANSIENT_HTTP,
                chargeable=True,
                http_status=status,
                final_url=final_url,
                error_code=f"http_{status}",
                error_message=f"The site answered HTTP {status}.",
                retry_after=retry_after,
            )
        visit = PageVisit(ok=False, chargeable=True, http_status=status, final_url=final_url)
        if page.get("waitFor"):
            timed_out = page["waitFor"] == "timeout"
            visit.error_code = "selector_timeout" if timed_out else "bad_selector"
            visit.error_message = (
                f"{waiting['selector']!r} did not appear within {waiting['timeout_ms']} ms."  # type: ignore[index]
                if timed_out
                else f"{waiting['selector']!r} is not a valid CSS selector."  # type: ignore[index]
            )
            return visit
        result = page.get("scrape")
        if page.get("scrapeError") or not isinstance(result, dict) or result.get("error"):
            visit.error_code = "scrape_error"
            visit.error_message = str(
                page.get("scrapeError")
                or (result.get("message") or result.get("error") if isinstance(result, dict) else "")
                or "the extraction script failed"
            )
            return visit
        visit.ok = True
        visit.data = _page_data(result, scrape)
        if screenshot:
            visit.screenshot_png = self._call(self.driver.get_screenshot_as_png)
        return visit


def _page_data(result: dict[str, Any], scrape: dict[str, Any]) -> Any:
    if scrape.get("schema"):
        return result.get("data")
    data: dict[str, Any] = {"title": result.get("title")}
    for fmt in ("markdown", "text"):
        if fmt in result:
            data[fmt] = result[fmt]
            data["truncated"] = bool(result.get("truncated"))
    return data


__all__ = ["BrowserError", "BrowserGone", "JobPageBrowser", "PageVisit", "parse_retry_after"]
