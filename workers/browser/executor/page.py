"""Page actions: navigate, viewport, screenshot, html, wait, observe, scrape; the page context."""

from __future__ import annotations

import time
from typing import Any

from selenium.common.exceptions import (
    JavascriptException,
    StaleElementReferenceException,
    WebDriverException,
)

from sessions.action_specs import OBSERVE_DEFAULT_ELEMENTS
from workers.browser import page_scripts
from workers.browser.base import Display
from workers.browser.executor.failures import message, page_error
from workers.browser.executor.params import number
from workers.browser.executor.run import (
    ActionFailed,
    Handler,
    Params,
    Run,
    ensure_display,
)

# What a scrape returns at most (the page decides how much there is; the request does not).
SCRAPE_MAX_CHARS = 200_000
SCRAPE_MAX_LIST_ITEMS = 5_000


def _do_navigate(run: Run, params: Params) -> dict[str, Any]:
    url = str(params.get("url") or "")
    if not url:
        raise ActionFailed("navigate needs a url")
    run.driver.get(url)
    page = dict(run.driver.execute_script(page_scripts.URL_AND_TITLE))
    raise_if_error_page(run, page, url)
    return page


def raise_if_error_page(run: Run, page: dict[str, Any], url: str) -> None:
    """Chromium answers a failed load (refused, DNS, TLS) with its own error page, not an error."""
    if not str(page.get("url", "")).startswith("chrome-error://"):
        return
    code = run.driver.execute_script(
        "const e = document.querySelector('.error-code'); return e ? e.textContent.trim() : '';"
    )
    raise ActionFailed(f"Could not load {url}: {code or 'the page failed to load'}")


def _do_viewport(run: Run, params: Params) -> dict[str, Any]:
    scale = params.get("scale_factor")
    display = Display(
        width=int(number(params, "width")),
        height=int(number(params, "height")),
        scale=float(scale) if scale else 1.0,
    )
    if display.width < 1 or display.height < 1 or display.scale <= 0:
        raise ActionFailed("The viewport needs a positive width, height and scale")
    run.driver.tab_displays.pop(run.tab, None)
    ensure_display(run.driver, run.tab, display)
    # Later actions convert coordinates with the new scale; the caller stores it.
    run.display = display
    run.new_display = display
    return {"width": display.width, "height": display.height, "scale_factor": display.scale}


def _do_screenshot(run: Run, params: Params) -> dict[str, Any]:
    # The caller stores the image and fills screenshot_url.
    run.screenshot_png = run.driver.get_screenshot_as_png()
    return {}


def _do_html(run: Run, params: Params) -> dict[str, Any]:
    # The browser has already decoded the page (by its declared or sniffed charset), so
    # auto_detect_encoding has nothing left to do. One WebDriver call: the serialised DOM.
    return {"html_content": run.driver.page_source}


def _do_wait(run: Run, params: Params) -> dict[str, Any]:
    ms = params.get("ms") or 0
    if ms > 0:
        time.sleep(ms / 1000)
    return {}


def page_context(run: Run) -> dict[str, Any]:
    context = dict(run.driver.execute_script(page_scripts.PAGE_CONTEXT))
    context.update(tab_id=run.tab, is_main_tab=run.tab == run.main_tab)
    return context


def script_again_on_navigation(exc: WebDriverException) -> bool:
    """A script that met a navigation (the document went away under it) is worth one more go."""
    text = message(exc).lower()
    return isinstance(exc, StaleElementReferenceException) or (
        isinstance(exc, JavascriptException) and ("unloaded" in text or "destroyed" in text)
    )


def observe_page(run: Run, max_elements: Any) -> dict[str, Any]:
    limit = max_elements or OBSERVE_DEFAULT_ELEMENTS  # a step observes with the default
    try:
        return dict(run.driver.execute_script(page_scripts.OBSERVE, limit, run.display.scale))
    except WebDriverException as exc:
        if not script_again_on_navigation(exc):
            raise
        time.sleep(0.1)
        return dict(run.driver.execute_script(page_scripts.OBSERVE, limit, run.display.scale))


def _do_observe(run: Run, params: Params) -> dict[str, Any]:
    return observe_page(run, params.get("max_elements"))


def _do_scrape(run: Run, params: Params) -> dict[str, Any]:
    schema, fmt = params.get("schema"), params["format"]
    reply = run.driver.execute_script(
        page_scripts.SCRAPE,
        {
            "schema": schema or None,
            "format": fmt,
            "selector": params.get("selector") or None,
            "maxChars": SCRAPE_MAX_CHARS,
            "maxItems": SCRAPE_MAX_LIST_ITEMS,
        },
    )
    page_error(reply)
    return dict(reply)


HANDLERS: dict[str, Handler] = {
    "navigate": _do_navigate,
    "viewport": _do_viewport,
    "screenshot": _do_screenshot,
    "html": _do_html,
    "wait": _do_wait,
    "observe": _do_observe,
    "scrape": _do_scrape,
}
