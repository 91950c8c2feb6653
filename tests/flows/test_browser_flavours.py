"""Browser flavours per browser (docs/operations.md "Browser flavours"): a session asks for
Chromium's headless shell with the create's extension field `browser`, and gets full Chromium
without it; anything else is 400 and creates nothing. Which binary runs is read from the browser's
own process (its command line names the session's profile directory). The warm pools per flavour
are in tests/flows/test_fleet.py, jobs' browsers in tests/jobs/test_job_flavours.py.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from sessions.models import BrowserSession
from tests.support.processes import browser_processes, wait_until

# What runs (Debian's /usr/bin/chromium is a script that execs the first; the shell's launcher
# execs the second): the first word of the browser's command line.
FULL = "/usr/lib/chromium/chromium "
SHELL = "/usr/lib/chromium/chromium-headless-shell "


def browser_commands(profile_dir: str) -> list[str]:
    return [cmd for _, cmd in browser_processes(profile_dir)]


def runs(profile_dir: str) -> str:
    """`chromium` or `headless_shell`: what the browser with this profile directory runs."""
    commands = browser_commands(profile_dir)
    full = any(cmd.startswith(FULL) for cmd in commands)
    shell = any(cmd.startswith(SHELL) for cmd in commands)
    assert full != shell, commands
    return "headless_shell" if shell else "chromium"


def _create(client: Any, prefix: str = "/v1", **body: Any) -> dict[str, Any]:
    response = client.post(f"{prefix}/computers", body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_a_session_that_asks_for_the_headless_shell_runs_it_and_acts(client, pages_server):
    session = _create(client, prefix="", browser="headless_shell")  # the Tzafon mount, as the SDK sends
    assert session["browser"] == "headless_shell"
    row = BrowserSession.objects.get(pk=session["id"])
    assert row.browser == "headless_shell"
    assert runs(row.profile_dir) == "headless_shell"
    # The actions an agent starts with work in the shell.
    navigated = client.post(f"/v1/computers/{row.pk}/navigate", {"url": f"{pages_server}/flow.html"}).json()
    assert navigated["status"] == "success", navigated
    html = client.post(f"/v1/computers/{row.pk}/html", {}).json()
    assert html["status"] == "success" and "<html" in html["result"]["html_content"], html
    shot = client.post(f"/v1/computers/{row.pk}/screenshot", {"base64": True}).json()
    assert shot["status"] == "success", shot
    png = base64.b64decode(shot["result"]["screenshot_url"].split(",", 1)[1])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.get(f"/v1/computers/{row.pk}").json()["browser"] == "headless_shell"
    assert client.delete(f"/v1/computers/{row.pk}").status_code == 200
    wait_until(lambda: not browser_commands(row.profile_dir), timeout=15, message="the shell to stop")


def test_a_session_runs_full_chromium_unless_it_asks(client):
    for body in ({}, {"browser": "chromium"}):
        session = _create(client, **body)
        assert session["browser"] == "chromium"
        row = BrowserSession.objects.get(pk=session["id"])
        assert row.browser == "chromium"
        assert runs(row.profile_dir) == "chromium"
        assert client.delete(f"/v1/computers/{row.pk}").status_code == 200


@pytest.mark.parametrize("value", ["firefox", "", "Chromium", "headless-shell", 1, True, None, ["chromium"]])
@pytest.mark.parametrize("prefix", ["/v1", ""])
def test_any_other_browser_is_400_and_creates_nothing(api_client, value, prefix):
    response = api_client.post(f"{prefix}/computers", {"browser": value})
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "invalid" and "browser" in body["errors"], body
    assert not BrowserSession.objects.filter(account=api_client.account).exists()


def test_the_shell_on_the_grid_backend_is_400_and_creates_nothing(api_client, settings):
    settings.BROWSER_BACKEND = "grid"  # the nodes run their own browser: full Chromium
    response = api_client.post("/v1/computers", {"browser": "headless_shell"})
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "browser_unavailable"
    assert not BrowserSession.objects.filter(account=api_client.account).exists()
