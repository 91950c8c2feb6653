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
# A restore's scratch page of one origin (state_import): its script fetches that origin's data,
# writes it, then goes on by itself to the next origin's scratch page or, after the last, to
# about:blank; a failure goes to about:blank at once, its message in the fragment.
_IMPORT_FAILED = "#browserfleet-state-failed:"
_IMPORT_PAGE = (
    "<!doctype html><title>state</title><script>\n"
    f"(async (data) => {{\ndata = await data;\n{STATE_IMPORT}\n}})({_STATE_FETCHED}).then(\n"
    "  () => location.replace(__NEXT_URL__),\n"
    f"  (e) => location.replace('about:blank{_IMPORT_FAILED}' + "
    "encodeURIComponent(String((e && e.message) || e).slice(0, 200))));\n"
    "</script>"
)
assert "</script" not in STATE_IMPORT.lower()


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


def _document_response(html: str) -> dict[str, Any]:
    return {
        "responseCode": 200,
        "responseHeaders": [
            {"name": "Content-Type", "value": "text/html; charset=utf-8"},
            {"name": "Cache-Control", "value": "no-store"},
        ],
        "body": base64.b64encode(html.encode()).decode("ascii"),
    }


def _root_url(origin: str) -> str:
    """The URL of an origin's root as Chromium requests it: lower-case host, no default port."""
    parts = urllib.parse.urlsplit(origin)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    port = parts.port
    default = 443 if parts.scheme == "https" else 80
    return f"{parts.scheme}://{host}{'' if port in (None, default) else f':{port}'}/"


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

    def open_origin(self, session: str, origin: str) -> None:
        """Load an empty document of `origin` in the tab, served by us: no network, no site script.
        The tab serves scratch pages (serve_scratch_pages)."""
        self.dt.blocking.discard(session)
        self.dt.drop_events(session)
        self.dt.send("Page.navigate", {"url": origin + "/"}, session)
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
    one scratch page per origin, whose script writes it and goes on by itself to the next one,
    and after the last back to about:blank: one navigation sent, every page and its data
    answered as the tab asks for them, nothing to wait for between them. The main tab, not a
    new one: a new tab is a new renderer process to start, while a blank tab's first navigation
    can take the process it already has. The tab is left on about:blank with an empty history.

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
            _write_origins(dt, session, per_origin)
            phases.mark("write")
            dt.blocking.discard(session)
            dt.serving.pop(session, None)
            dt.call("Fetch.disable", {}, session)
            with contextlib.suppress(BrowserError):  # an older build keeps the entries
                dt.call("Page.resetNavigationHistory", {}, session)
            dt.call("Target.detachFromTarget", {"sessionId": session})
            phases.mark("blank")
        if sent is not None:
            dt.reply(sent, "Storage.setCookies")
            phases.mark("cookies")
    return phases.ms


def _write_origins(dt: DevTools, session: str, per_origin: dict[str, dict[str, Any]]) -> None:
    """Write each origin's storage from its scratch page in the tab, which then ends on
    about:blank (loaded): a failure raises.

    The last scratch page goes to about:blank itself (location.replace: a renderer-initiated
    navigation), not by Page.navigate: Chromium gives a browser-initiated navigation away from a
    site a new renderer process (seen with SystemInfo.getProcessInfo), while this one stays in
    the site's renderer, which the session's first navigation to that site then takes
    (docs/benchmarks.md, "Wave 4 session 4"). The blank page's origin is then the last restored
    one instead of an opaque one: only a script run on it could tell (its URL is about:blank,
    its history one entry, nothing of the site runs there). Not through WebDriver either:
    chromedriver follows the tab's navigations as it does a page's own.
    """
    roots = [_root_url(origin) for origin in per_origin]
    answers: dict[str, dict[str, Any]] = {}
    for at, (root, data) in enumerate(zip(roots, per_origin.values(), strict=True)):
        following = roots[at + 1] if at + 1 < len(roots) else "about:blank"
        answers[root] = _document_response(
            _IMPORT_PAGE.replace("__NEXT_URL__", json.dumps(following).replace("<", "\\u003c"))
        )
        answers[root.rstrip("/") + _STATE_PATH] = _state_response(data)
    dt.serving[session] = answers  # every other request of these pages is refused
    dt.blocking.add(session)
    dt.drop_events(session)
    dt.send("Page.navigate", {"url": roots[0]}, session)
    blank = False
    while True:
        method, event = dt.next_event(("Page.frameNavigated", "Page.loadEventFired"), session)
        if method == "Page.loadEventFired":
            if blank:
                return
            continue
        frame = event.get("frame") or {}
        if frame.get("parentId"):
            continue
        url = str(frame.get("url", ""))
        fragment = str(frame.get("urlFragment", ""))
        if url == "about:blank" or url.startswith("about:blank#"):
            fragment = fragment or url.removeprefix("about:blank")
            if fragment.startswith(_IMPORT_FAILED):
                failure = urllib.parse.unquote(fragment.removeprefix(_IMPORT_FAILED))
                raise BrowserError(f"script failed: {failure[:200]}")
            blank = True
        elif url not in roots:  # an error page: a scratch page was not served
            raise BrowserError(f"a scratch page did not load (the tab went to {url[:100]!r})")


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
