"""Driving our own pages (the operator dashboard, the customer console) in the tests' headless
Chromium: open a page and wait for it, click what leaves the page and wait for the next one, the
browser console's errors, and a whole-page picture for the docs."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.support.wait import WebDriverWait

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"


def _loaded(driver: Any) -> None:
    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")


def open_page(driver: Any, url: str) -> None:
    driver.get(url)
    _loaded(driver)


def _gone(element: Any) -> Callable[[Any], bool]:
    """Selenium's staleness_of, also when Chromium answers the check in the middle of the
    navigation with "Node with given id does not belong to the document" (an unknown error, not
    a stale element: seen once in CI on Chromium 156)."""

    def check(_: Any) -> bool:
        try:
            element.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as exc:
            if "does not belong to the document" in str(exc):
                return True
            raise
        return False

    return check


def click_and_wait(driver: Any, element: Any) -> None:
    """Click what leads to another page (a submit, a link) and wait for that page: the current
    page's readyState is already complete, so first wait for `element` to go stale."""
    element.click()
    WebDriverWait(driver, 30).until(_gone(element))
    _loaded(driver)


def severe_console_errors(driver: Any) -> list[dict[str, Any]]:
    """The browser console's errors since the last call (CSP violations, 404s, script errors)."""
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def save_page_png(driver: Any, name: str, tmp_path: Path, *, max_height: int = 4000) -> None:
    """The whole page as PNG: into docs/img/ when SAVE_DOCS_SCREENSHOTS=1 (the docs show them),
    else into the test's tmp dir (so the capture itself is still exercised)."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], max_height), "scale": 1}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    target = DOCS_IMG if os.environ.get("SAVE_DOCS_SCREENSHOTS") == "1" else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    (target / name).write_bytes(base64.b64decode(shot["data"]))
