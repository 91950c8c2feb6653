"""The restore's shape on a real Chromium (docs/saved-state.md, "Restore time"): several origins
written through the session's main tab, and that tab left as a fresh session's is (on about:blank,
no history, no other tab). The browser never reaches the network for it: the origins are ports
nobody listens on, answered by the worker itself."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.private_services import free_port
from tests.workers.test_actions_executor import Browser, _start, _stop
from workers.browser.base import Display
from workers.browser.devtools import DevTools, devtools_url
from workers.browser.errors import BrowserError
from workers.browser.saved_state import _Browser, state_export, state_import

pytestmark = pytest.mark.usefixtures("egress_filter")


@pytest.fixture
def browser() -> Iterator[Browser]:
    started = _start(Display(800, 600, 1.0))
    yield started
    _stop(started)


def test_a_state_of_several_origins_restores_through_the_main_tab_and_leaves_it_blank(
    browser: Browser,
) -> None:
    origins = [f"http://127.0.0.1:{free_port()}" for _ in range(3)]
    record = {"$d": 0}  # the codec's Date
    # The data travels inside the scratch document: markup, non-ASCII and a lone surrogate in it
    # come back as they were, and none of it runs or ends the element that holds it.
    # A large value that compresses (the data then goes deflated: _state_response).
    big = "a saved value " * 10_000
    tricky = "</script><script>localStorage.setItem('x', 1)</script><!-- <\\/ é 😀 \ud800 &amp;"
    state = {
        "format": 1,
        "cookies": [{"name": "sid", "value": "s1", "domain": "127.0.0.1", "path": "/", "httpOnly": True}],
        "origins": {
            origin: {
                "localStorage": [["n", str(n)], ["tricky", tricky], ["big", big]],
                "indexedDB": [
                    {
                        "name": "db",
                        "version": 2,
                        "stores": [
                            {
                                "name": "notes",
                                "keyPath": None,
                                "autoIncrement": False,
                                "indexes": [],
                                "records": [[n, record]],
                            }
                        ],
                    }
                ],
            }
            for n, origin in enumerate(origins)
        },
        "sessionStorage": {origins[1]: {"tab": "note"}},
    }
    state_import(browser.handle, state, timeout=60)

    with DevTools(devtools_url(browser.handle), timeout=30) as dt:
        pages = _Browser(dt).pages()
        assert [p["url"] for p in pages] == ["about:blank"]  # no scratch tab left, on a blank page
        session = _Browser(dt).attach(pages[0]["targetId"])
        history = dt.call("Page.getNavigationHistory", {}, session)["entries"]
        assert [e["url"] for e in history] == ["about:blank"]  # the scratch pages left no trace
    # WebDriver follows: it drives the tab where the restore left it.
    assert browser.js("return [location.href, history.length]") == ["about:blank", 1]
    exported = state_export(browser.handle, origins=origins, timeout=60)
    assert [c["name"] for c in exported["cookies"]] == ["sid"] and exported["cookies"][0]["httpOnly"]
    for n, origin in enumerate(origins):
        saved = exported["origins"][origin]
        assert sorted(saved["localStorage"]) == [["big", big], ["n", str(n)], ["tricky", tricky]]
        [db] = saved["indexedDB"]
        assert db["version"] == 2 and db["stores"][0]["records"] == [[n, record]]


def test_a_state_the_page_refuses_fails_the_import_with_the_page_error_and_writes_no_later_origin(
    browser: Browser,
) -> None:
    """A write the page refuses (an IndexedDB record without the key its store's keyPath names)
    stops the restore at once and comes back as the page's own error, not as a wait that times
    out; the origins after it are not written."""
    first, second = (f"http://127.0.0.1:{free_port()}" for _ in range(2))
    store = {"name": "s", "keyPath": "id", "autoIncrement": False, "indexes": []}
    refused = {"name": "d", "version": 1, "stores": [{**store, "records": [[None, "no id"]]}]}
    state = {
        "format": 1,
        "cookies": [],
        "origins": {
            first: {"localStorage": [["k", "first"]], "indexedDB": [refused]},
            second: {"localStorage": [["k", "second"]], "indexedDB": []},
        },
        "sessionStorage": {},
    }
    with pytest.raises(BrowserError, match=r"script failed: .*(key path|keyPath)"):
        state_import(browser.handle, state, timeout=20)
    exported = state_export(browser.handle, origins=[first, second], timeout=30)
    assert second not in exported["origins"]
