"""Saved browser state (Tzafon's `persistent` and `environment_id`) through the public SDK, on real
browsers, with a site the test serves on 127.0.0.1 that logs its visitor in.

The site sets a session cookie (HttpOnly), a persistent cookie, localStorage, sessionStorage and
an IndexedDB record, each holding a secret unique to the test (so a dump can be searched for it).
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from tzafon import Lightcone

from tests.support.processes import wait_until

LOGIN_PAGE = """<!doctype html><title>logging in</title><body><div id=out>pending</div><script>
localStorage.setItem('profile', 'ls-%(token)s');
sessionStorage.setItem('tabnote', 'ss-%(token)s');
const open = indexedDB.open('site', 1);
open.onupgradeneeded = () => open.result.createObjectStore('notes', {keyPath: 'id'});
open.onsuccess = () => {
  const tx = open.result.transaction('notes', 'readwrite');
  tx.objectStore('notes').put({id: 1, note: 'idb-%(token)s', at: new Date(0)});
  tx.oncomplete = () => { document.getElementById('out').textContent = 'stored'; };
};
</script></body>"""

WHOAMI_PAGE = """<!doctype html><title>who</title><body><pre id=cookies>%(cookies)s</pre>
<div id=out>pending</div><script>
const parts = ['ls=' + localStorage.getItem('profile'), 'ss=' + sessionStorage.getItem('tabnote')];
const open = indexedDB.open('site');
open.onupgradeneeded = () => {};
open.onsuccess = () => {
  const db = open.result;
  if (!db.objectStoreNames.contains('notes')) { parts.push('idb=none'); done(); return; }
  db.transaction('notes').objectStore('notes').get(1).onsuccess = (e) => {
    const row = e.target.result;
    parts.push('idb=' + (row ? row.note + '@' + (row.at instanceof Date) : 'none'));
    done();
  };
};
function done() { document.getElementById('out').textContent = 'read ' + parts.join(' '); }
</script></body>"""


class _Site(BaseHTTPRequestHandler):
    token = ""

    def do_GET(self) -> None:
        if self.path.startswith("/login"):
            body = LOGIN_PAGE % {"token": self.token}
            cookies = [
                f"sid=sid-{self.token}; Path=/; HttpOnly",
                f"remember=rem-{self.token}; Path=/; Max-Age=86400",
            ]
        elif self.path.startswith("/whoami"):
            body = WHOAMI_PAGE % {"cookies": self.headers.get("Cookie", "")}
            cookies = []
        else:
            self.send_response(404)
            self.end_headers()
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for cookie in cookies:
            self.send_header("Set-Cookie", cookie)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def site() -> Iterator[tuple[str, str]]:
    """(base URL, the secret token its state holds)."""
    token = secrets.token_hex(8)
    handler = type("Site", (_Site,), {"token": token})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", token
    server.shutdown()


def _sdk(client: Any) -> Lightcone:
    return Lightcone(api_key=client.key, base_url=client.base_url, max_retries=0)


def _page_text(sdk: Lightcone, session_id: str, marker: str) -> str:
    """The page's HTML once its script wrote `marker` (its storage reads are asynchronous)."""
    seen: dict[str, str] = {}

    def ready() -> bool:
        result = sdk.computers.html(session_id)
        seen["html"] = str((result.result or {}).get("html_content", ""))
        return marker in seen["html"]

    wait_until(ready, timeout=20, message=f"the page to show {marker!r}")
    return seen["html"]


def _log_in(sdk: Lightcone, session_id: str, base: str) -> None:
    assert sdk.computers.navigate(session_id, url=base + "/login").status == "success"
    _page_text(sdk, session_id, "stored")


def _whoami(sdk: Lightcone, session_id: str, base: str) -> str:
    assert sdk.computers.navigate(session_id, url=base + "/whoami").status == "success"
    return _page_text(sdk, session_id, "read ")


def _state_of(html: str) -> dict[str, str]:
    cookies = re.search(r"<pre id=\"?cookies\"?>(.*?)</pre>", html, re.S)
    out = re.search(r"read ([^<]*)<", html)
    assert cookies and out, html
    values = dict(part.split("=", 1) for part in out.group(1).split())
    for part in cookies.group(1).split(";"):
        if "=" in part:
            name, value = part.strip().split("=", 1)
            values[name] = value
    return values


def test_persistent_session_state_is_restored_by_environment_id(client, site):
    base, token = site
    sdk = _sdk(client)
    first = sdk.computers.create(kind="browser", persistent=True)
    _log_in(sdk, first.id, base)
    sdk.computers.delete(first.id)

    second = sdk.computers.create(kind="browser", environment_id=first.id)
    assert second.environment_id == first.id
    state = _state_of(_whoami(sdk, second.id, base))
    sdk.computers.delete(second.id)

    assert state["sid"] == f"sid-{token}"  # a session cookie, HttpOnly
    assert state["remember"] == f"rem-{token}"
    assert state["ls"] == f"ls-{token}"
    assert state["ss"] == f"ss-{token}"  # the open tab's sessionStorage, into the main tab
    assert state["idb"] == f"idb-{token}@true"  # a Date stays a Date
