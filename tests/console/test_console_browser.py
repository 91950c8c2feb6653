"""The console in a real headless Chromium, on work done through the tzafon SDK and the API with
the whole stack: sign in, the overview's balance is /v1/account's, the usage charts hold
/v1/usage's numbers, a session's actions and screenshot, a job's CSV, and no browser console
error on any page. SAVE_DOCS_SCREENSHOTS=1 saves each page into docs/img/console-*.png."""

from __future__ import annotations

import csv
import io

from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from accounts.services import member_add
from tests.conftest import _end_all_jobs, _end_all_sessions
from tests.console.conftest import PASSWORD
from tests.jobs.conftest import wait_job
from tests.support.page_browser import click_and_wait, open_page, save_page_png, severe_console_errors
from tests.support.processes import wait_until

READ_CHARTS = """
return Object.fromEntries(Object.entries(window.consoleCharts || {}).map(([key, chart]) => [key, {
  labels: chart.data.labels,
  datasets: chart.data.datasets.map(d => ({label: d.label, data: d.data})),
  drawn: chart.canvas.width > 0 && chart.canvas.height > 0 && Chart.getChart(chart.canvas) === chart,
}]));
"""

FETCH_TEXT = """
const done = arguments[arguments.length - 1];
fetch(arguments[0], {credentials: "same-origin"}).then(r => r.text().then(t => done([r.status, t])));
"""


def test_a_member_follows_their_account_in_the_console(make_client, pages_server, browser, tmp_path):
    client = make_client(plan="pro", name="acme", credits=100_000)
    member_add(account=client.account, email="owner@acme.test", role="owner", password=PASSWORD)
    base = client.base_url

    # --- Work done with the public SDK: a session that navigates and takes a screenshot.
    # A start may fail on a saturated machine (503, nothing charged): retried as the SDK does.
    sdk = client.sdk(max_retries=8)
    with sdk.computer.create(kind="browser") as computer:
        session_id = computer.id
        assert computer.navigate(pages_server + "/flow.html").status == "success"
        assert computer.screenshot().status == "success"
    actions = [
        a["type"] for a in reversed(client.get(f"/v1/computers/{session_id}/actions").json()["results"])
    ]
    assert actions == ["navigate", "screenshot"]
    # ...and a batch job of two pages.
    job = client.post(
        "/v1/jobs",
        {
            "urls": [pages_server + "/flow.html", pages_server + "/products.html"],
            "scrape": {"format": "text"},
        },
    )
    assert job.status_code == 201, job.text
    job_id = job.json()["id"]
    wait_job(client, job_id)

    # --- Signed out: the password reset page; then sign in through the form.
    open_page(browser, f"{base}/console/password-reset/")
    assert not severe_console_errors(browser)
    open_page(browser, f"{base}/console/")
    assert "/console/login/" in browser.current_url
    save_page_png(browser, "console-login.png", tmp_path)
    browser.find_element(By.ID, "id_username").send_keys("owner@acme.test")
    browser.find_element(By.ID, "id_password").send_keys(PASSWORD)
    click_and_wait(browser, browser.find_element(By.CSS_SELECTOR, "button[type=submit]"))
    assert browser.current_url == f"{base}/console/"
    assert not severe_console_errors(browser)

    # --- Overview: the balance is /v1/account's (session time may still be billed: read again).
    def balances_agree() -> bool:
        open_page(browser, f"{base}/console/")
        shown = browser.find_element(By.ID, "balance").text
        return shown == str(client.get("/v1/account").json()["balance"])

    wait_until(balances_agree, timeout=30, message="the overview's balance to equal /v1/account's")
    # It refreshes itself without a reload.
    live = browser.find_element(By.ID, "overview-live")
    WebDriverWait(browser, 30).until(lambda d: live.get_attribute("data-refreshed-at"))
    assert browser.find_element(By.ID, "balance").text == str(client.get("/v1/account").json()["balance"])
    assert not severe_console_errors(browser)
    save_page_png(browser, "console-overview.png", tmp_path)

    # --- Usage: every chart drawn, from the same numbers /v1/usage answers for the page's range.
    for key in ("24h", "7d", "30d"):
        open_page(browser, f"{base}/console/usage/?range={key}")
        start = browser.find_element(By.ID, "usage-from").get_attribute("datetime")
        end = browser.find_element(By.ID, "usage-to").get_attribute("datetime")
        group_by = "hour" if key == "24h" else "day"
        usage = client.get("/v1/usage", params={"from": start, "to": end, "group_by": group_by}).json()
        assert usage["credits_spent"] > 0
        charts = browser.execute_script(READ_CHARTS)
        assert set(charts) == {"buckets", "kinds", "actions"} and all(c["drawn"] for c in charts.values())
        assert charts["buckets"]["labels"] == [b["start"] for b in usage["buckets"]]
        assert charts["buckets"]["datasets"][0]["data"] == [b["credits"] for b in usage["buckets"]]
        assert charts["buckets"]["datasets"][1]["data"] == [b["session_minutes"] for b in usage["buckets"]]
        assert (
            dict(zip(charts["kinds"]["labels"], charts["kinds"]["datasets"][0]["data"], strict=True))
            == (usage["credits_by_kind"])
        )
        assert (
            dict(zip(charts["actions"]["labels"], charts["actions"]["datasets"][0]["data"], strict=True))
            == (usage["credits_by_action_type"])
        )
        assert browser.find_element(By.ID, "credits-spent").text == str(usage["credits_spent"])
        assert not severe_console_errors(browser)
        if key == "7d":
            save_page_png(browser, "console-usage.png", tmp_path)

    # --- Sessions: the list, then the session's page with its actions and the screenshot.
    open_page(browser, f"{base}/console/sessions/")
    assert not severe_console_errors(browser)
    save_page_png(browser, "console-sessions.png", tmp_path)
    click_and_wait(
        browser, browser.find_element(By.CSS_SELECTOR, f'a[href="/console/sessions/{session_id}/"]')
    )
    rows = browser.find_elements(By.CSS_SELECTOR, "#timeline tr[data-action-id]")
    assert [r.find_element(By.TAG_NAME, "strong").text for r in rows] == ["navigate", "screenshot"]
    assert browser.find_element(By.ID, "ended-reason").text == "user"
    shot = browser.find_element(By.CSS_SELECTOR, "#timeline img.shot")
    WebDriverWait(browser, 30).until(lambda d: d.execute_script("return arguments[0].naturalWidth", shot) > 0)
    assert not severe_console_errors(browser)
    save_page_png(browser, "console-session.png", tmp_path)

    # --- Jobs: the list with its progress bar, the job's page, its CSV as the API gives it.
    open_page(browser, f"{base}/console/jobs/")
    assert browser.find_element(By.CSS_SELECTOR, "#jobs progress").get_attribute("value") == "100"
    assert not severe_console_errors(browser)
    save_page_png(browser, "console-jobs.png", tmp_path)
    click_and_wait(browser, browser.find_element(By.CSS_SELECTOR, f'a[href="/console/jobs/{job_id}/"]'))
    assert browser.find_element(By.ID, "job-status").text == "completed"
    csv_href = browser.find_element(By.ID, "download-csv").get_attribute("href")
    status, console_csv = browser.execute_async_script(FETCH_TEXT, csv_href)
    api_csv = client.get(f"/v1/jobs/{job_id}/results", params={"format": "csv"}).text
    assert status == 200
    rows = list(csv.DictReader(io.StringIO(console_csv)))
    assert rows == list(csv.DictReader(io.StringIO(api_csv)))
    assert sorted(r["url"] for r in rows) == sorted(
        [pages_server + "/flow.html", pages_server + "/products.html"]
    )
    # On a saturated machine a page may time out: the page then shows it among the failures.
    failed = [r for r in rows if r["status"] == "failed"]
    shown = browser.find_elements(By.CSS_SELECTOR, "#job-failures tbody td.num")
    assert sum(int(td.text) for td in shown) == len(failed)
    assert not severe_console_errors(browser)
    save_page_png(browser, "console-job.png", tmp_path)

    # --- Members (owners invite from here); the billing pages; the admin has a favicon too.
    open_page(browser, f"{base}/console/members/")
    assert browser.find_element(By.CSS_SELECTOR, '#members tr[data-member="owner@acme.test"]')
    assert not severe_console_errors(browser)
    save_page_png(browser, "console-members.png", tmp_path)
    for path in ("/console/billing/", "/console/keys/"):
        open_page(browser, base + path)
        assert not severe_console_errors(browser)
    open_page(browser, f"{base}/admin/login/")
    assert not severe_console_errors(browser)  # before, /favicon.ico was a 404 in every admin page's console

    # --- A live session's page opens the live viewer.
    with sdk.computer.create(kind="browser") as computer:
        open_page(browser, f"{base}/console/sessions/{computer.id}/")
        assert browser.find_element(By.ID, "session-status").text.strip() in ("ready", "running")
        first = browser.current_window_handle
        browser.find_element(By.ID, "live-view").click()
        WebDriverWait(browser, 30).until(lambda d: len(d.window_handles) == 2)
        browser.switch_to.window(next(h for h in browser.window_handles if h != first))
        WebDriverWait(browser, 30).until(lambda d: "/live/" in d.current_url)
        browser.close()
        browser.switch_to.window(first)
    browser.get_log("browser")  # the viewer's own page is the live viewer's tests' concern

    # --- Signing out ends it.
    open_page(browser, f"{base}/console/")
    click_and_wait(browser, browser.find_element(By.CSS_SELECTOR, ".who button[type=submit]"))
    open_page(browser, f"{base}/console/")
    assert "/console/login/" in browser.current_url
    _end_all_jobs()
    _end_all_sessions()
