"""Saved browser state (Tzafon's `persistent` and `environment_id`) through the public SDK, on real
browsers, with a site the test serves on 127.0.0.1 that logs its visitor in.

The site sets a session cookie (HttpOnly), a persistent cookie, localStorage, sessionStorage and
an IndexedDB record, each holding a secret unique to the test (so a dump can be searched for it).
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from tzafon import Lightcone

from tests.support.processes import wait_until

# The secret comes from a JSON request, never in the page's HTML: the test's html actions store
# the HTML they read (in action results), and a dump must hold no stored value but those.
LOGIN_PAGE = """<!doctype html><title>logging in</title><body><div id=out>pending</div><script>
fetch('/secret%(query)s').then((r) => r.json()).then(({token}) => {
  localStorage.setItem('profile', 'ls-' + token);
  sessionStorage.setItem('tabnote', 'ss-' + token);
  const open = indexedDB.open('site', 1);
  open.onupgradeneeded = () => open.result.createObjectStore('notes', {keyPath: 'id'});
  open.onsuccess = () => {
    const tx = open.result.transaction('notes', 'readwrite');
    tx.objectStore('notes').put({id: 1, note: 'idb-' + token, at: new Date(0)});
    tx.oncomplete = () => { document.getElementById('out').textContent = 'stored'; };
  };
  // ?bulk=N: N MB more in another database, so that restoring the state takes a while.
  const bulk = %(bulk)d;
  if (bulk) {
    const more = indexedDB.open('bulk', 1);
    more.onupgradeneeded = () => more.result.createObjectStore('blobs');
    more.onsuccess = () => {
      const tx = more.result.transaction('blobs', 'readwrite');
      for (let i = 0; i < bulk * 16; i++) tx.objectStore('blobs').put('x'.repeat(65536), i);
    };
  }
});
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
function done() {
  document.getElementById('out').textContent = 'read ' + parts.join(' ');
  document.body.appendChild(Object.assign(document.createElement('i'), {id: 'done'}));
}
</script></body>"""


class _Site(BaseHTTPRequestHandler):
    token = ""

    def do_GET(self) -> None:
        token = self.token + ("-v2" if "v=2" in self.path else "")
        content_type = "text/html; charset=utf-8"
        if self.path.startswith("/login"):
            bulk = re.search(r"bulk=(\d+)", self.path)
            body = LOGIN_PAGE % {
                "query": "?v=2" if "v=2" in self.path else "",
                "bulk": int(bulk.group(1)) if bulk else 0,
            }
            cookies = [
                f"sid=sid-{token}; Path=/; HttpOnly",
                f"remember=rem-{token}; Path=/; Max-Age=86400",
            ]
        elif self.path.startswith("/secret"):
            body, cookies, content_type = json.dumps({"token": token}), [], "application/json"
        elif self.path.startswith("/whoami"):
            body = WHOAMI_PAGE % {"cookies": self.headers.get("Cookie", "")}
            cookies = []
        else:
            self.send_response(404)
            self.end_headers()
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for cookie in cookies:
            self.send_header("Set-Cookie", cookie)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _serve_site() -> Iterator[tuple[str, str]]:
    token = secrets.token_hex(8)
    handler = type("Site", (_Site,), {"token": token})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", token
    server.shutdown()


@pytest.fixture
def site() -> Iterator[tuple[str, str]]:
    """(base URL, the secret token its state holds)."""
    yield from _serve_site()


@pytest.fixture
def other_site() -> Iterator[tuple[str, str]]:
    """A second site, another origin (another port)."""
    yield from _serve_site()


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


def test_a_page_reads_the_restored_storage_at_its_first_run_even_while_the_restore_runs(client, site):
    """The session is ready once its cookies are in; its origins' storage goes in after, before
    its first action runs (docs/saved-state.md, "Restore time"). A navigation sent right after
    the create, to a page whose script reads localStorage, sessionStorage and IndexedDB as it
    first runs, sees every restored value, with a state large enough (8 MB) that its restore
    is still running when the navigation arrives."""
    base, token = site
    sdk = _sdk(client)
    first = sdk.computers.create(kind="browser", persistent=True)
    assert sdk.computers.navigate(first.id, url=base + "/login?bulk=8").status == "success"
    _page_text(sdk, first.id, "stored")
    wait_until(
        lambda: (
            (r := client.post(f"/v1/computers/{first.id}/state")).status_code == 200
            and r.json()["size_bytes"] > 8_000_000
        ),
        timeout=60,
        message="the bulk data to be in the saved state",
    )
    sdk.computers.delete(first.id)

    second = sdk.computers.create(kind="browser", environment_id=first.id)
    state = _state_of(_whoami(sdk, second.id, base))  # at once: no wait between the two
    sdk.computers.delete(second.id)
    assert state["ls"] == f"ls-{token}"
    assert state["ss"] == f"ss-{token}"
    assert state["idb"] == f"idb-{token}@true"
    assert state["sid"] == f"sid-{token}"


def test_an_origin_restored_but_never_visited_is_in_the_next_save(client, site, other_site):
    """A restores two origins' storage into B, which visits neither and saves: C, restored from
    B, has both origins' localStorage and IndexedDB. sessionStorage, as documented, is saved
    only for origins open in a tab at save time: B's main tab was blank, so C has none."""
    base, token = site
    other, other_token = other_site
    sdk = _sdk(client)
    first = _persistent_logged_in(client, sdk, base)
    assert sdk.computers.navigate(first, url=other + "/login").status == "success"
    _page_text(sdk, first, "stored")
    sdk.computers.delete(first)
    assert sorted(_environment(client, first)["origins"]) == sorted([base, other])

    second = sdk.computers.create(kind="browser", persistent=True, environment_id=first)
    sdk.computers.delete(second.id)  # nothing visited: its save is what it restored
    assert sorted(_environment(client, second.id)["origins"]) == sorted([base, other])

    third = sdk.computers.create(kind="browser", environment_id=second.id)
    here = _state_of(_whoami(sdk, third.id, base))
    there = _state_of(_whoami(sdk, third.id, other))
    sdk.computers.delete(third.id)
    assert (here["ls"], here["idb"]) == (f"ls-{token}", f"idb-{token}@true")
    assert here["sid"] == there["sid"] == f"sid-{other_token}"  # cookies are per host, not per port
    assert (there["ls"], there["idb"]) == (f"ls-{other_token}", f"idb-{other_token}@true")
    assert here["ss"] == "null" and there["ss"] == "null"


def _environment(client: Any, environment_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/environments/{environment_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def _persistent_logged_in(client: Any, sdk: Lightcone, base: str, **create: Any) -> str:
    session = sdk.computers.create(kind="browser", persistent=True, **create)
    _log_in(sdk, session.id, base)
    return str(session.id)


def test_a_chain_keeps_the_newest_state_and_lists_and_forgets_environments(client, site):
    base, token = site
    sdk = _sdk(client)
    first = _persistent_logged_in(client, sdk, base)
    sdk.computers.delete(first)

    # B restores A, logs in again as a second version, and saves under its own id.
    second = sdk.computers.create(kind="browser", persistent=True, environment_id=first)
    assert sdk.computers.navigate(second.id, url=base + "/login?v=2").status == "success"
    _page_text(sdk, second.id, "stored")
    sdk.computers.delete(second.id)

    listed = client.get("/computers?type=persistent")
    assert listed.status_code == 200
    assert isinstance(listed.json(), list)  # a bare array, as the SDK expects
    assert {c["id"] for c in listed.json()} == {first, second.id}
    assert {c.id for c in sdk.computers.list(type="persistent")} == {first, second.id}

    env = _environment(client, second.id)
    assert env["status"] == "ready" and env["restorable"] is True
    assert env["restored_from"] == first
    assert env["origins"] == [base] and env["cookie_count"] == 2
    assert env["size_bytes"] > 0 and env["expires_at"] > env["saved_at"]
    assert token not in str(env)  # what it shows is metadata, never a stored value

    third = sdk.computers.create(kind="browser", environment_id=second.id)
    newest = _state_of(_whoami(sdk, third.id, base))
    sdk.computers.delete(third.id)
    assert newest["sid"] == f"sid-{token}-v2" and newest["ls"] == f"ls-{token}-v2"
    assert _environment(client, first)["status"] == "ready"  # A is still A

    assert client.delete(f"/v1/environments/{second.id}").status_code == 204
    assert client.get(f"/v1/environments/{second.id}").status_code == 404
    gone = client.post("/v1/computers", {"environment_id": second.id})
    assert gone.status_code == 404 and gone.json()["code"] == "environment_not_found"


def test_one_writer_many_readers_of_an_environment(client, site):
    base, _ = site
    sdk = _sdk(client)
    first = _persistent_logged_in(client, sdk, base)
    sdk.computers.delete(first)

    writer = client.post("/v1/computers", {"persistent": True, "environment_id": first})
    assert writer.status_code == 201, writer.text
    second_writer = client.post("/v1/computers", {"persistent": True, "environment_id": first})
    assert second_writer.status_code == 409, second_writer.text
    assert second_writer.json()["code"] == "environment_in_use"
    assert second_writer.headers.get("x-should-retry") == "false"
    reader = client.post("/v1/computers", {"environment_id": first})
    assert reader.status_code == 201, reader.text
    assert reader.json()["environment_id"] == first and reader.json()["persistent"] is None

    client.delete(f"/v1/computers/{writer.json()['id']}")
    again = client.post("/v1/computers", {"persistent": True, "environment_id": first})
    assert again.status_code == 201, again.text


def test_another_accounts_or_an_unknown_environment_is_404_and_nothing_starts(make_client, site):
    from sessions.models import BrowserSession

    base, _ = site
    owner = make_client(plan="pro", name="owner")
    sdk = _sdk(owner)
    first = _persistent_logged_in(owner, sdk, base)
    sdk.computers.delete(first)

    other = make_client(plan="pro", name="other")
    for environment_id in (first, "comp_000000000000000000000000"):
        response = other.post("/v1/computers", {"environment_id": environment_id})
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "environment_not_found"
        assert other.get(f"/v1/environments/{environment_id}").status_code == 404
        assert other.delete(f"/v1/environments/{environment_id}").status_code == 404
    assert not BrowserSession.objects.filter(account=other.account).exists()
    assert other.get("/computers?type=persistent").json() == []


def test_idle_expiry_saves_the_state(client, site):
    base, token = site
    sdk = _sdk(client)
    session_id = _persistent_logged_in(client, sdk, base, inactivity_timeout_seconds=2)
    env = wait_until(
        lambda: (
            (r := client.get(f"/v1/environments/{session_id}")).status_code == 200
            and r.json()["status"] == "ready"
            and r.json()
        ),
        timeout=30,
        message="the idle session's state to be saved",
    )
    assert env["origins"] == [base]
    restored = sdk.computers.create(kind="browser", environment_id=session_id)
    assert _state_of(_whoami(sdk, restored.id, base))["ls"] == f"ls-{token}"
    sdk.computers.delete(restored.id)


def test_save_while_live_then_a_crash_keeps_that_state_and_says_so(client, site):
    import os
    import signal

    from sessions.models import BrowserSession

    base, token = site
    sdk = _sdk(client)
    session_id = _persistent_logged_in(client, sdk, base)
    saved = client.post(f"/computers/{session_id}/state")
    assert saved.status_code == 200, saved.text
    assert saved.json()["status"] == "ready" and saved.json()["id"] == session_id
    assert client.post(f"/v1/computers/{session_id}/state").json()["saved_at"] >= saved.json()["saved_at"]

    plain = client.post("/v1/computers", {}).json()["id"]
    refused = client.post(f"/v1/computers/{plain}/state")
    assert refused.status_code == 409 and refused.json()["code"] == "session_not_persistent"

    os.killpg(BrowserSession.objects.get(pk=session_id).browser_pid, signal.SIGKILL)
    wait_until(
        lambda: BrowserSession.objects.filter(pk=session_id, ended_reason="crashed").exists(),
        timeout=30,
        message="reconcile to end the session as crashed",
    )
    env = wait_until(
        lambda: (e := _environment(client, session_id))["status"] == "failed" and e,
        timeout=30,
        message="the crash to be recorded on the state",
    )
    assert "crashed" in env["failure_reason"] and "is kept" in env["failure_reason"]
    assert env["restorable"] is True
    restored = sdk.computers.create(kind="browser", environment_id=session_id)
    assert _state_of(_whoami(sdk, restored.id, base))["sid"] == f"sid-{token}"
    sdk.computers.delete(restored.id)


def test_a_state_above_the_plan_cap_fails_clearly_and_is_not_stored(client, site):
    plan = client.account.plan
    plan.saved_state_max_bytes = 200  # two cookies and a little storage are more
    plan.save()
    base, _ = site
    sdk = _sdk(client)
    session_id = _persistent_logged_in(client, sdk, base)
    sdk.computers.delete(session_id)
    env = _environment(client, session_id)
    assert env["status"] == "failed" and env["restorable"] is False
    assert "above the pro plan's cap of 200 bytes" in env["failure_reason"]
    refused = client.post("/v1/computers", {"environment_id": session_id})
    assert refused.status_code == 400 and refused.json()["code"] == "environment_empty"


def test_no_plaintext_of_a_saved_value_in_a_database_dump_or_the_profile_roots(client, site, tmp_path):
    import subprocess
    from pathlib import Path

    from django.conf import settings
    from django.db import connection

    base, token = site
    sdk = _sdk(client)
    session_id = _persistent_logged_in(client, sdk, base)
    sdk.computers.delete(session_id)
    assert _environment(client, session_id)["status"] == "ready"

    dump = subprocess.run(
        ["pg_dump", "-h", "127.0.0.1", "-U", "postgres", "--data-only", connection.settings_dict["NAME"]],
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout
    assert session_id.encode() in dump  # the dump is of the database that holds the state
    for secret in (f"sid-{token}", f"rem-{token}", f"ls-{token}", f"idb-{token}", f"ss-{token}"):
        assert secret.encode() not in dump, secret
    root = Path(settings.BROWSER_PROFILE_ROOT)
    for path in root.rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path


def test_a_batch_job_browses_with_a_saved_state_read_only(client, site):
    from tests.jobs.conftest import results, wait_job

    base, token = site
    sdk = _sdk(client)
    session_id = _persistent_logged_in(client, sdk, base)
    sdk.computers.delete(session_id)
    saved_at = _environment(client, session_id)["saved_at"]

    missing = client.post("/v1/jobs", {"urls": [base + "/whoami"], "environment_id": "comp_nope"})
    assert missing.status_code == 404 and missing.json()["code"] == "environment_not_found"
    response = client.post(
        "/v1/jobs",
        {
            "urls": [f"{base}/whoami?page={n}" for n in range(3)],
            "environment_id": session_id,
            "wait_for": {"selector": "#done"},
            "scrape": {"schema": {"fields": {"cookies": "#cookies", "out": "#out"}}},
        },
    )
    assert response.status_code == 201, response.text
    done = wait_job(client, response.json()["id"])
    assert done["counts"]["succeeded"] == 3, done
    for row in results(client, done["id"]):
        assert f"sid=sid-{token}" in row["data"]["cookies"]
        assert f"ls=ls-{token}" in row["data"]["out"] and f"idb=idb-{token}@true" in row["data"]["out"]
    assert _environment(client, session_id)["saved_at"] == saved_at  # read, never written


def test_a_state_that_does_not_restore_fails_the_create_with_422_and_costs_nothing(client, site):
    from billing.selectors import balance_of
    from sessions.models import BrowserSession, SavedStateBlob

    base, _ = site
    sdk = _sdk(client)
    first = _persistent_logged_in(client, sdk, base)
    sdk.computers.delete(first)
    blob = SavedStateBlob.objects.get(state_id=first)
    sealed = bytes(blob.data)
    blob.data = sealed[:-1] + bytes([sealed[-1] ^ 1])  # one bit flipped: authentication fails
    blob.save()
    before = balance_of(account_id=client.account.pk)

    response = client.post("/v1/computers", {"environment_id": first})
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "environment_restore_failed"
    assert "could not be read" in response.json()["detail"]
    failed = BrowserSession.objects.filter(account=client.account).exclude(pk=first).get()
    assert failed.status == "terminated" and failed.ended_reason == "start_failed"
    wait_until(
        lambda: BrowserSession.objects.filter(pk=failed.pk, browser_released_at__isnull=False).exists(),
        timeout=30,
        message="the browser of the failed restore to be stopped",
    )
    assert balance_of(account_id=client.account.pk) == before  # its first minute refunded


@pytest.mark.parametrize("reason", ["admin", "credits_exhausted", "max_lifetime"])
def test_every_end_but_a_crash_saves_the_state(client, site, reason):
    from django.utils import timezone

    from sessions.models import BrowserSession
    from sessions.services import session_terminate

    base, token = site
    sdk = _sdk(client)
    session_id = _persistent_logged_in(client, sdk, base)
    if reason == "max_lifetime":  # its lifetime runs out now: Beat's sweep ends it
        BrowserSession.objects.filter(pk=session_id).update(expires_at=timezone.now())
    else:  # the admin action's and the time charge's own call
        assert session_terminate(session_id=session_id, reason=reason)
    env = wait_until(
        lambda: (
            (r := client.get(f"/v1/environments/{session_id}")).status_code == 200
            and r.json()["status"] == "ready"
            and r.json()
        ),
        timeout=60,
        message=f"the state of a session ended {reason} to be saved",
    )
    assert client.get(f"/v1/computers/{session_id}").json()["ended_reason"] == reason
    assert env["origins"] == [base]
    restored = sdk.computers.create(kind="browser", environment_id=session_id)
    assert _state_of(_whoami(sdk, restored.id, base))["sid"] == f"sid-{token}"
    sdk.computers.delete(restored.id)


def test_a_storage_the_browser_refuses_after_ready_ends_the_session_start_failed_at_no_cost(client, site):
    """The storage goes in after the session is ready: a browser that does not take it (here an
    IndexedDB record without the key its store's keyPath names) ends the session start_failed
    (error "environment restore failed: ..."), its browser stopped and its first minute refunded."""
    from billing.selectors import balance_of
    from sessions.models import BrowserSession
    from sessions.saved_state import RESTORE_FAILED, saved_state_store

    base, _ = site
    sdk = _sdk(client)
    first = _persistent_logged_in(client, sdk, base)
    sdk.computers.delete(first)
    store = {"name": "s", "keyPath": "id", "autoIncrement": False, "indexes": []}
    database = {"name": "d", "version": 1, "stores": [{**store, "records": [[None, "no id"]]}]}
    refused = {
        "format": 1,
        "cookies": [{"name": "c", "value": "v", "domain": "127.0.0.1", "path": "/"}],
        "origins": {base: {"localStorage": [], "indexedDB": [database]}},
        "sessionStorage": {},
    }
    saved_state_store(session=BrowserSession.objects.get(pk=first), state=refused)
    before = balance_of(account_id=client.account.pk)

    created = client.post("/v1/computers", {"environment_id": first})
    assert created.status_code == 201, created.text  # ready once its cookies were in
    session_id = created.json()["id"]
    wait_until(
        lambda: BrowserSession.objects.filter(pk=session_id, browser_released_at__isnull=False).exists(),
        timeout=60,
        message="the session whose storage was refused to end and its browser to stop",
    )
    ended = client.get(f"/v1/computers/{session_id}").json()
    assert ended["status"] == "terminated" and ended["ended_reason"] == "start_failed", ended
    assert BrowserSession.objects.get(pk=session_id).error == (
        f"{RESTORE_FAILED}: the browser did not accept the saved state"
    )
    assert balance_of(account_id=client.account.pk) == before  # its first minute refunded


def test_a_restore_lost_with_its_worker_ends_the_session_before_an_action_runs_without_it(client, site):
    """The storage goes in after ready, under the session's action lock. If the worker doing it is
    lost, the lock runs out but the restoring mark does not: the next drain that takes the lock
    finds the mark and ends the session (crashed, the action cancelled and refunded) instead of
    browsing logged out; a crashed end saves nothing over the state."""
    from billing.models import LedgerEntry
    from project.redis import get_redis
    from sessions.models import Action, BrowserSession
    from workers.action_runner import lock_key, restoring_key

    base, _ = site
    sdk = _sdk(client)
    first = sdk.computers.create(kind="browser", persistent=True)
    _log_in(sdk, first.id, base)
    sdk.computers.delete(first.id)
    second = sdk.computers.create(kind="browser", environment_id=first.id, persistent=True)
    redis = get_redis()
    wait_until(
        lambda: not redis.exists(restoring_key(second.id)) and not redis.exists(lock_key(second.id)),
        timeout=60,
        message="the restore to finish and let go of the session's lock",
    )
    redis.set(restoring_key(second.id), "1")  # as left by a restorer lost with its lock

    answer = client.post(f"/v1/computers/{second.id}/navigate", {"url": base + "/whoami"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "error", answer.text
    action = Action.objects.get(public_id=answer.json()["action_id"])
    assert action.status == "cancelled"
    assert LedgerEntry.objects.filter(action=action, kind="refund").exists()
    session = BrowserSession.objects.get(pk=second.id)
    assert session.status == "terminated" and session.ended_reason == "crashed"
    assert "restore was interrupted" in session.error
    assert not redis.exists(restoring_key(second.id))
    # The environment it came from is untouched and still restores.
    assert _environment(client, first.id)["status"] == "ready"
