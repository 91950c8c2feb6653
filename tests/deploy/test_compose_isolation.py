"""Compose/Grid isolation (issue 19 item 4): no --no-sandbox from us, one session per node, a
node network whose only way out is the egress filter, an authenticated hub, no VNC.

The compose file is read as YAML (`docker-compose config`, which validates it offline, is run
too where docker-compose is installed: bin/dev install puts it in).
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from workers.browser.base import Display, webdriver_request
from workers.browser.options import chrome_capabilities

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
ENV = {
    "DJANGO_SECRET_KEY": "x",
    "POSTGRES_PASSWORD": "x",
    "REDIS_PASSWORD": "x",
    "SELENIUM_GRID_PASSWORD": "grid-pass",
    "SELENIUM_REGISTRATION_SECRET": "reg-secret",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    docker_compose = shutil.which("docker-compose")
    if docker_compose is None:
        pytest.fail("docker-compose is not installed (bin/dev install puts it in)")
    done = subprocess.run(
        [docker_compose, "-f", str(COMPOSE), "config"],
        env={**os.environ, **ENV},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=COMPOSE.parent,
    )
    assert done.returncode == 0, done.stderr
    return dict(yaml.safe_load(done.stdout))


def test_grid_browsers_get_no_no_sandbox_from_us() -> None:
    from workers.browser import grid

    captured: dict[str, Any] = {}

    def fake_request(method: str, url: str, *, body: Any = None, timeout: float = 5.0) -> Any:
        captured.setdefault("body", body)
        raise grid.BrowserError("stop here")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(grid, "webdriver_request", fake_request)
        patch.setattr(grid.egress, "ensure_ready", lambda: None)
        with pytest.raises(grid.BrowserStartError):
            grid.GridBackend("http://127.0.0.1:9").start(session_id="s", display=Display())
    args = captured["body"]["capabilities"]["alwaysMatch"]["goog:chromeOptions"]["args"]
    assert "--no-sandbox" not in args
    assert (
        "--no-sandbox"
        in chrome_capabilities(display=Display(), binary=None, profile_dir=None)["goog:chromeOptions"]["args"]
    )  # the local fallback still can


def test_chrome_nodes_sit_on_an_internal_network_with_the_filter_as_their_only_way_out(
    compose: dict[str, Any],
) -> None:
    services, networks = compose["services"], compose["networks"]
    node = services["chrome"]
    assert set(node["networks"]) == {"browsers"}
    assert networks["browsers"].get("internal") is True
    on_browsers = {name for name, service in services.items() if "browsers" in service.get("networks", {})}
    assert on_browsers == {"chrome", "selenium-hub", "egress"}
    # Only the filter also has a network with a way out; PostgreSQL and Redis are elsewhere.
    assert "outside" in services["egress"]["networks"]
    for name in ("postgres", "redis"):
        assert set(services[name]["networks"]) == {"backend"}
    assert "backend" not in services["selenium-hub"]["networks"]


def test_one_session_per_node_no_vnc_and_an_authenticated_hub(compose: dict[str, Any]) -> None:
    services = compose["services"]
    node_env = services["chrome"]["environment"]
    assert node_env["SE_NODE_MAX_SESSIONS"] == "1"
    assert node_env["SE_NODE_OVERRIDE_MAX_SESSIONS"] == "false"
    assert node_env["SE_START_VNC"] == "false" and node_env["SE_START_NO_VNC"] == "false"
    assert node_env["SE_REGISTRATION_SECRET"] == "reg-secret"
    hub_env = services["selenium-hub"]["environment"]
    assert hub_env["SE_REGISTRATION_SECRET"] == "reg-secret"
    assert hub_env["SE_ROUTER_PASSWORD"] == "grid-pass"
    worker_env = services["worker-lifecycle"]["environment"]
    assert worker_env["SELENIUM_GRID_USERNAME"] == hub_env["SE_ROUTER_USERNAME"]
    assert worker_env["SELENIUM_GRID_PASSWORD"] == "grid-pass"
    assert "@" not in worker_env["SELENIUM_GRID_URL"]  # never in the URL stored per session


class _Recorder(BaseHTTPRequestHandler):
    seen: list[str | None] = []

    def do_GET(self) -> None:
        _Recorder.seen.append(self.headers.get("Authorization"))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"value": {"ready": true}}')

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Recorder.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_hub_gets_basic_auth_and_nothing_else_does(recorder: str, settings: Any) -> None:
    settings.SELENIUM_GRID_URL = recorder
    settings.SELENIUM_GRID_USERNAME, settings.SELENIUM_GRID_PASSWORD = "browserfleet", "grid-pass"
    webdriver_request("GET", f"{recorder}/status")
    settings.SELENIUM_GRID_URL = "http://127.0.0.1:9"
    webdriver_request("GET", f"{recorder}/status")  # a local chromedriver, say
    expected = "Basic " + base64.b64encode(b"browserfleet:grid-pass").decode()
    assert _Recorder.seen == [expected, None]
