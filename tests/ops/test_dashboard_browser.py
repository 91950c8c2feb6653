"""The operator dashboard in a real headless Chromium, on data made through the HTTP API."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from django.contrib.auth.models import User
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from sessions.models import BrowserSession
from tests.support.page_browser import click_and_wait, open_page, save_page_png, severe_console_errors
from tests.support.processes import wait_until

CHART_KEYS = {"sessions", "session_minutes", "credits", "actions", "latency", "top_accounts"}

READ_CHARTS = """
return Object.fromEntries(Object.entries(window.opsCharts || {}).map(([key, chart]) => [key, {
  labels: chart.data.labels,
  datasets: chart.data.datasets.map(d => ({label: d.label, data: d.data})),
  drawn: chart.canvas.width > 0 && chart.canvas.height > 0 && Chart.getChart(chart.canvas) === chart,
}]));
"""


def _login(browser: Any, base_url: str, username: str, password: str, next_url: str = "/admin/ops/") -> None:
    open_page(browser, f"{base_url}/admin/login/?next={next_url}")
    browser.find_element(By.ID, "id_username").send_keys(username)
    browser.find_element(By.ID, "id_password").send_keys(password)
    click_and_wait(browser, browser.find_element(By.CSS_SELECTOR, "input[type=submit]"))


def _tile(browser: Any, key: str) -> str:
    return browser.find_element(By.CSS_SELECTOR, f'[data-tile="{key}"] .ops-tile-value').text.strip()


def _ok(response: Any) -> dict[str, Any]:
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", response.text
    return body


@pytest.mark.usefixtures("celery_worker_process")
def test_operator_watches_and_steers_the_fleet_from_the_dashboard(
    make_client, pages_server, browser, tmp_path
):
    alpha = make_client(plan="pro", name="alpha", credits=100_000)
    beta = make_client(plan="pro", name="beta", credits=100_000)

    # alpha: one session that works (and fails once), one that waits, one it ended itself.
    working = alpha.post("/v1/computers", {}).json()["id"]
    _ok(alpha.post(f"/v1/computers/{working}/navigate", {"url": pages_server + "/flow.html"}))
    _ok(alpha.post(f"/v1/computers/{working}/screenshot", {}))
    failed = alpha.post(
        f"/v1/computers/{working}/step", {"action": "click", "selector": "#nope", "timeout_ms": 200}
    )
    assert failed.status_code == 200 and failed.json()["status"] == "error"
    waiting = alpha.post("/v1/computers", {}).json()["id"]
    ended = alpha.post("/v1/computers", {}).json()["id"]
    assert alpha.delete(f"/v1/computers/{ended}").status_code in (200, 204)
    # beta: one session, one action.
    other = beta.post("/v1/computers", {}).json()["id"]
    _ok(beta.post(f"/v1/computers/{other}/execute", {"action": {"type": "wait", "ms": 1}}))

    spent = {c.account.name: 100_000 - c.get("/v1/account").json()["balance"] for c in (alpha, beta)}
    assert spent["alpha"] > spent["beta"] > 0
    # Newest first in the API; oldest first on the session page.
    history = {
        sid: [a["type"] for a in reversed(c.get(f"/v1/computers/{sid}/actions").json()["results"])]
        for c, sid in ((alpha, working), (beta, other))
    }
    action_types = sorted(history[working] + history[other])
    assert len(action_types) == 4

    User.objects.create_user("operator", password="op-pass", is_staff=True, is_superuser=True)
    User.objects.create_user("customer", password="cu-pass")
    base = alpha.base_url

    # --- Login through the admin's form, then from the admin index to the dashboard.
    _login(browser, base, "operator", "op-pass", next_url="/admin/")
    browser.get_log("browser")  # drained: the stock login page asks for a /favicon.ico we do not serve
    browser.find_element(By.CSS_SELECTOR, "#ops-dashboard-link a").click()
    WebDriverWait(browser, 30).until(
        expected_conditions.presence_of_element_located((By.ID, "ops-dashboard"))
    )

    # --- Tiles.
    assert _tile(browser, "sessions-running") == "2"
    assert _tile(browser, "sessions-ready") == "1"
    assert _tile(browser, "sessions-starting") == "0"
    host = socket.gethostname()
    assert browser.find_element(By.CSS_SELECTOR, f'[data-tile="browsers"] [data-host="{host}"] b').text == "3"
    assert _tile(browser, "credits-today") == str(spent["alpha"] + spent["beta"])
    assert browser.find_element(By.CSS_SELECTOR, "[data-actions-recent]").text == "4"
    assert _tile(browser, "actions-per-minute") == str(round(4 / 15, 1))
    assert _tile(browser, "error-rate") == "25.0%"  # the failed click, of four finished
    assert int(_tile(browser, "workers")) >= 1
    assert browser.find_elements(By.CSS_SELECTOR, '[data-tile="workers"] [data-worker^="lifecycle-"]')
    for queue in ("actions", "lifecycle"):
        assert _tile(browser, f"queue-{queue}").isdigit()

    # --- Charts: every one drawn by Chart.js from the page's data.
    charts = browser.execute_script(READ_CHARTS)
    assert set(charts) == CHART_KEYS
    assert all(chart["drawn"] for chart in charts.values())

    def series(key: str) -> dict[str, list[float]]:
        return {d["label"]: d["data"] for d in charts[key]["datasets"]}

    assert sum(series("sessions")["started"]) == 4
    assert sum(series("sessions")["ended: user"]) == 1
    assert sum(sum(values) for values in series("credits").values()) == spent["alpha"] + spent["beta"]
    assert sorted(charts["actions"]["labels"]) == sorted(set(action_types))
    assert sum(sum(values) for values in series("actions").values()) == 4
    assert sum(series("actions")["failed"]) == 1
    assert set(series("latency")) == {"p50", "p95"}
    assert max(v for v in series("latency")["p95"] if v is not None) > 0
    assert sum(series("session_minutes")["session minutes"]) > 0
    assert charts["top_accounts"]["labels"] == ["alpha", "beta"]
    assert charts["top_accounts"]["datasets"][0]["data"] == [spent["alpha"], spent["beta"]]
    # The numbers stay in the page as tables, folded away once the charts are drawn.
    assert browser.find_element(By.CSS_SELECTOR, '[data-chart-table="top_accounts"]').get_attribute(
        "textContent"
    )
    assert not severe_console_errors(browser)
    save_page_png(browser, "dashboard.png", tmp_path)

    # --- The live table counts down, and terminates a session.
    rows = browser.find_elements(By.CSS_SELECTOR, "#ops-live-sessions tr[data-session]")
    assert {row.get_attribute("data-session") for row in rows} == {working, waiting, other}
    countdown = browser.find_element(By.CSS_SELECTOR, f'tr[data-session="{working}"] [data-countdown]')
    first = countdown.text
    WebDriverWait(browser, 10).until(lambda d: countdown.text != first)
    browser.find_element(By.CSS_SELECTOR, f'button[data-terminate="{waiting}"]').click()
    WebDriverWait(browser, 30).until(
        lambda d: (
            not d.find_elements(By.CSS_SELECTOR, f'tr[data-session="{waiting}"]')
            and d.find_elements(By.ID, "ops-dashboard")
        )
    )
    assert f"Session {waiting} terminated" in browser.find_element(By.CSS_SELECTOR, ".messagelist").text
    assert _tile(browser, "sessions-ready") == "0"
    row = BrowserSession.objects.get(pk=waiting)
    assert (row.status, row.ended_reason) == ("terminated", "admin")
    assert alpha.get(f"/v1/computers/{waiting}").json()["status"] == "terminated"
    wait_until(
        lambda: BrowserSession.objects.get(pk=waiting).browser_released_at is not None,
        timeout=30,
        message="the terminated session's browser to be stopped",
    )

    # --- A session page: its actions, with the screenshot as a thumbnail, and its ledger lines.
    browser.find_element(By.CSS_SELECTOR, f'a[href="/admin/ops/sessions/{working}/"]').click()
    WebDriverWait(browser, 30).until(expected_conditions.presence_of_element_located((By.ID, "ops-session")))
    actions = browser.find_elements(By.CSS_SELECTOR, "#ops-actions tr[data-action]")
    assert [a.get_attribute("data-type") for a in actions] == ["navigate", "screenshot", "step"] or len(
        actions
    ) == 3
    assert [a.get_attribute("data-status") for a in actions] == ["succeeded", "succeeded", "failed"]
    assert "#nope" in actions[2].text
    thumb = browser.find_element(By.CSS_SELECTOR, "#ops-actions img.ops-thumb")
    WebDriverWait(browser, 30).until(
        lambda d: d.execute_script("return arguments[0].naturalWidth", thumb) > 0
    )
    assert browser.find_elements(By.CSS_SELECTOR, '#ops-ledger tr[data-kind="action"]')
    assert browser.find_elements(By.CSS_SELECTOR, f'button[data-terminate="{working}"]')
    assert not severe_console_errors(browser)
    save_page_png(browser, "session.png", tmp_path)

    # --- An account page: balance over time, spend, sessions, keys, top-up.
    open_page(browser, f"{base}/admin/ops/accounts/{alpha.account.pk}/")
    balance = browser.execute_script("return window.opsCharts.balance.data.datasets[0].data")
    assert balance[-1] == 100_000 - spent["alpha"]
    assert browser.find_element(By.CSS_SELECTOR, '[data-field="balance"]').text == str(
        100_000 - spent["alpha"]
    )
    assert len(browser.find_elements(By.CSS_SELECTOR, "#ops-account-sessions tbody tr")) == 3
    assert len(browser.find_elements(By.CSS_SELECTOR, "#ops-keys tbody tr")) == 1
    topup = browser.find_element(By.ID, "ops-topup").get_attribute("href")
    assert topup.endswith(f"/admin/accounts/account/{alpha.account.pk}/credits/topup/")
    assert not severe_console_errors(browser)
    save_page_png(browser, "account.png", tmp_path)

    # --- A user who is not staff is refused.
    browser.delete_all_cookies()
    _login(browser, base, "customer", "cu-pass")
    assert "/admin/login/" in browser.current_url
    assert "staff account" in browser.find_element(By.CSS_SELECTOR, ".errornote").text
    open_page(browser, f"{base}/admin/ops/")
    assert "/admin/login/" in browser.current_url
    assert not browser.find_elements(By.ID, "ops-dashboard")
