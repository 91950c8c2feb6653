"""Export and import a browser's state (docs/saved-state.md) through the DevTools protocol.

The state is portable JSON: every cookie of the browser (session and HttpOnly ones included),
and per origin its localStorage and IndexedDB, plus the sessionStorage of the origins open in
tabs. It does not depend on the Chromium version, the host or the backend.

An origin's storage is read and written from a scratch tab of that origin whose only request
(the document) is answered by us through the Fetch domain: nothing is loaded from the network,
and no site script runs there. Which origins: those of the open tabs and of their history, the
ones the caller names (the session's pages, the state it was restored from).
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
import urllib.parse
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

from sessions.location import BrowserLocation
from workers.browser.base import webdriver_request
from workers.browser.devtools import DevTools, devtools_url
from workers.browser.errors import BrowserError
from workers.browser.page_scripts import STATE_EXPORT, STATE_IMPORT

STATE_FORMAT = 1
_SCRATCH_PAGE = base64.b64encode(b"<!doctype html><title>state</title>").decode()
# Cookie fields Storage.setCookies takes back (Storage.getCookies returns more).
_COOKIE_FIELDS = (
    "name",
    "value",
    "domain",
    "path",
    "secure",
    "httpOnly",
    "sameSite",
    "expires",
    "priority",
    "sourceScheme",
    "sourcePort",
    "partitionKey",
)
_SESSION_STORAGE_READ = "JSON.stringify(Object.entries(sessionStorage))"


def origin_of(url: str) -> str | None:
    """scheme://host[:port] of an http(s) URL; None for anything else (about:, data:, ...)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"


# The data an origin restores is fetched by its scratch page's script from this path of the
# origin, answered by us through the Fetch domain and parsed by the page's own Response.json().
# Nothing on the network has this URL: the scratch tab's every request is answered or refused by
# us. What a restore's write costs is mostly the bytes through the DevTools socket (framing
# here, the browser's handling of a 1 MB message), not IndexedDB: so the JSON goes compressed
# (zlib, level 1; a state's values are mostly text) when that at least halves it, and the page
# inflates it natively (DecompressionStream). Measured (1 MB in IndexedDB, one page, load 17-21,
# medians of 8): 33 ms against 71 ms as a JSON string in the script's source; data that does not
# compress goes as plain JSON, as fast as before.
_STATE_PATH = "/.browserfleet-saved-state"
_DEFLATED = "application/x-browserfleet-deflate"
_STATE_FETCHED = (
    f"fetch({_STATE_PATH!r}, {{cache: 'no-store'}}).then((r) => "
    f"r.headers.get('content-type') === {_DEFLATED!r} "
    "? new Response(r.body.pipeThrough(new DecompressionStream('deflate'))).json() : r.json())"
)
_IMPORT_FETCHED = "data = await data;\n" + STATE_IMPORT  # `data`: the promise of that fetch


def _state_response(data: Any) -> dict[str, Any]:
    """The Fetch.fulfillRequest of `data` (one origin's part of a state): JSON, deflated when
    that pays."""
    body, kind = json.dumps(data, separators=(",", ":")).encode(), "application/json"
    # A sample tells first, so that data that does not compress (random tokens) costs no
    # compression of all of it.
    if len(body) > 4096 and len(zlib.compress(body[:65536], 1)) * 2 <= min(len(body), 65536):
        packed = zlib.compress(body, 1)
        if len(packed) * 2 <= len(body):
            body, kind = packed, _DEFLATED
    return {
        "responseCode": 200,
        "responseHeaders": [
            {"name": "Content-Type", "value": kind},
            {"name": "Cache-Control", "value": "no-store"},
        ],
        "body": base64.b64encode(body).decode("ascii"),
    }


def _async_body(body: str, argument: str = "null") -> str:
    return f"(async (data) => {{\n{body}\n}})({argument})"


class _Browser:
    def __init__(self, devtools: DevTools) -> None:
        self.dt = devtools

    def pages(self) -> list[dict[str, Any]]:
        targets = self.dt.call("Target.getTargets").get("targetInfos", [])
        return [t for t in targets if t.get("type") == "page"]

    def attach(self, target_id: str) -> str:
        return str(
            self.dt.call("Target.attachToTarget", {"targetId": target_id, "flatten": True})["sessionId"]
        )

    def isolated_context(self, session: str, target_id: str) -> int:
        """A world of our own in the tab's main frame: the page's scripts cannot tamper with it."""
        world = self.dt.call(
            "Page.createIsolatedWorld", {"frameId": target_id, "worldName": "browserfleet-state"}, session
        )
        return int(world["executionContextId"])

    def serve_scratch_pages(self, session: str) -> None:
        """From now on the tab's requests pause for us (open_origin answers them)."""
        self.dt.call_all(
            [
                ("Fetch.enable", {"patterns": [{"urlPattern": "*"}]}, session),
                ("Page.enable", {}, session),
            ]
        )
        # Not every build has it; a service worker would only see a request it cannot answer.
        with contextlib.suppress(BrowserError):
            self.dt.call("Network.setBypassServiceWorker", {"bypass": True}, session)

    def open_origin(self, session: str, origin: str, data: Any = None) -> None:
        """Load an empty document of `origin` in the tab, served by us: no network, no site script.
        The tab serves scratch pages (serve_scratch_pages). `data`, if given, is the one other
        request the page may make: `_STATE_PATH` answers it (made ready while the browser
        navigates)."""
        self.dt.blocking.discard(session)
        self.dt.serving.pop(session, None)
        self.dt.drop_events(session)
        self.dt.send("Page.navigate", {"url": origin + "/"}, session)
        if data is not None:
            self.dt.serving[session] = (origin + _STATE_PATH, _state_response(data))
        while True:
            paused = self.dt.wait_event("Fetch.requestPaused", session)
            if paused.get("resourceType") == "Document":  # the navigation (its URL is normalized)
                break
            # A late request of the tab's previous page (a favicon): refused, not answered as ours.
            self.dt.send(
                "Fetch.failRequest",
                {"requestId": paused["requestId"], "errorReason": "BlockedByClient"},
                session,
            )
        self.dt.blocking.add(session)  # anything else this page asks for is refused
        self.dt.send(
            "Fetch.fulfillRequest",
            {
                "requestId": paused["requestId"],
                "responseCode": 200,
                "responseHeaders": [
                    {"name": "Content-Type", "value": "text/html"},
                    {"name": "Cache-Control", "value": "no-store"},
                ],
                "body": _SCRATCH_PAGE,
            },
            session,
        )
        self.dt.wait_event("Page.loadEventFired", session)

    @contextlib.contextmanager
    def scratch_tab(self) -> Iterator[str]:
        """A background tab serving scratch pages (its DevTools session), closed after."""
        target = str(
            self.dt.call("Target.createTarget", {"url": "about:blank", "background": True})["targetId"]
        )
        try:
            session = self.attach(target)
            self.serve_scratch_pages(session)
            yield session
        finally:
            self.dt.call("Target.closeTarget", {"targetId": target})


def state_export(
    handle: BrowserLocation, *, origins: Iterable[str] = (), timeout: float = 30.0
) -> dict[str, Any]:
    """The browser's state as a JSON-ready dict (see the module docstring)."""
    with DevTools(devtools_url(handle), timeout=timeout) as dt:
        browser = _Browser(dt)
        cookies = [
            {name: cookie[name] for name in _COOKIE_FIELDS if name in cookie}
            for cookie in dt.call("Storage.getCookies").get("cookies", [])
        ]
        wanted = {o for o in (origin_of(u) for u in origins) if o}
        session_storage: dict[str, dict[str, str]] = {}
        for page in browser.pages():
            session = browser.attach(page["targetId"])
            history = dt.call("Page.getNavigationHistory", {}, session).get("entries", [])
            wanted.update(o for o in (origin_of(e.get("url", "")) for e in history) if o)
            here = origin_of(page.get("url", ""))
            if here:
                context = browser.isolated_context(session, page["targetId"])
                entries = json.loads(dt.evaluate(_SESSION_STORAGE_READ, session, context_id=context))
                if entries:
                    session_storage.setdefault(here, {}).update(dict(entries))
            dt.call("Target.detachFromTarget", {"sessionId": session})
        storage: dict[str, Any] = {}
        if wanted:
            with browser.scratch_tab() as scratch:  # one tab, one navigation per origin
                for origin in sorted(wanted):
                    browser.open_origin(scratch, origin)
                    data = json.loads(dt.evaluate(_async_body(STATE_EXPORT), scratch))
                    if data["localStorage"] or data["indexedDB"]:
                        storage[origin] = {
                            "localStorage": data["localStorage"],
                            "indexedDB": data["indexedDB"],
                        }
        return {
            "format": STATE_FORMAT,
            "cookies": cookies,
            "origins": storage,
            "sessionStorage": session_storage,
        }


def state_import(
    handle: BrowserLocation,
    state: dict[str, Any],
    *,
    timeout: float = 30.0,
    cookies: bool = True,
    storage: bool = True,
) -> dict[str, float]:
    """Put a saved state into a browser that has none yet (a fresh or a blank warm one): its
    cookies, its origins' storage, or both (the default). A session's restore puts the cookies
    in before the session is ready and the storage after, before its first action
    (workers/services.py); a batch job's browser takes both at once.

    What a restore costs is mostly fixed (docs/saved-state.md, "Restore time"), so it does as
    little as it can: the cookies in one command, sent first and collected last; then the
    origins' storage (localStorage, IndexedDB, sessionStorage) in the session's own main tab,
    one scratch navigation and one script per origin. The main tab, not a new one: a new tab
    is a new renderer process to start, while a blank tab's first navigation can take the
    process it already has. The tab is then put back on about:blank with an empty history.

    Returns where its time went, in ms per phase (for the worker's log line).
    """
    if state.get("format") != STATE_FORMAT:
        raise BrowserError(f"unknown saved state format {state.get('format')!r}")
    per_origin = _per_origin(state) if storage else {}
    phases = _Phases()
    with DevTools(devtools_url(handle), timeout=timeout) as dt:
        browser = _Browser(dt)
        sent = (
            dt.send("Storage.setCookies", {"cookies": state["cookies"]})
            if cookies and state["cookies"]
            else None
        )
        if per_origin:
            tab = _main_tab(browser, handle)
            session = browser.attach(tab)
            browser.serve_scratch_pages(session)
            phases.mark("connect")
            for origin, data in per_origin.items():
                browser.open_origin(session, origin, data)
                phases.mark("open")
                dt.evaluate(_async_body(_IMPORT_FETCHED, _STATE_FETCHED), session)
                phases.mark("write")
            dt.blocking.discard(session)
            dt.serving.pop(session, None)
            dt.call("Fetch.disable", {}, session)
            # Back to a blank page, and the scratch pages leave no trace in the tab's history.
            # The last scratch page goes there itself (location.replace: a renderer-initiated
            # navigation), not by Page.navigate: Chromium gives a browser-initiated navigation
            # away from a site a new renderer process (seen with SystemInfo.getProcessInfo),
            # while this one stays in the site's renderer, which the session's first navigation
            # to that site then takes (docs/benchmarks.md, "Wave 4 session 4"). The blank page's
            # origin is then the last restored one instead of an opaque one: only a script run
            # on it could tell (its URL is about:blank, its history one entry, nothing of the
            # site runs there). Not through WebDriver either: chromedriver follows the tab's
            # navigations as it does a page's own.
            dt.drop_events(session)
            dt.evaluate("location.replace('about:blank')", session)
            dt.wait_event("Page.loadEventFired", session)
            with contextlib.suppress(BrowserError):  # an older build keeps the entries
                dt.call("Page.resetNavigationHistory", {}, session)
            dt.call("Target.detachFromTarget", {"sessionId": session})
            phases.mark("blank")
        if sent is not None:
            dt.reply(sent, "Storage.setCookies")
            phases.mark("cookies")
    return phases.ms


class _Phases:
    """Milliseconds spent per named phase (a phase run per origin adds up)."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}
        self._at = time.perf_counter()

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        self.ms[name] = self.ms.get(name, 0.0) + (now - self._at) * 1000
        self._at = now


def state_has_storage(state: dict[str, Any]) -> bool:
    """The state holds some origin's storage (not only cookies)."""
    return bool(_per_origin(state))


def _per_origin(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What each origin restores: its localStorage and IndexedDB, and its sessionStorage (of the
    tabs open at save time, put into the main tab)."""
    out: dict[str, dict[str, Any]] = {}
    for origin, data in state["origins"].items():
        out[origin] = {"localStorage": data["localStorage"], "indexedDB": data["indexedDB"]}
    for origin, entries in (state.get("sessionStorage") or {}).items():
        if entries:
            target = out.setdefault(origin, {"localStorage": [], "indexedDB": []})
            target["sessionStorage"] = list(entries.items())
    return out


def _main_tab(browser: _Browser, handle: BrowserLocation) -> str:
    """The DevTools target id of the session's main tab (WebDriver's window handle)."""
    pages = browser.pages()
    if len(pages) == 1:  # a fresh browser: no need to ask WebDriver
        return str(pages[0]["targetId"])
    return str(
        webdriver_request("GET", f"{handle.webdriver_url}/session/{handle.webdriver_session_id}/window")[
            "value"
        ]
    )
