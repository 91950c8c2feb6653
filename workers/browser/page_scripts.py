"""JavaScript that the executor runs in the page, as WebDriver script bodies (`arguments[0]` ...).

The scripts are plain .js files in workers/browser/scripts/, read once when this module is
imported (a worker's start), so they can be read, linted and diffed as JavaScript.

Each action sends one script that does all of its page work, because every WebDriver round trip
costs several milliseconds while walking the DOM in the page costs far less. Scripts return plain
JSON (or element references) and report page-side problems as `{"error": ..., "message": ...}`
instead of throwing, so that Python can tell "your selector is wrong" from "the browser broke".

Coordinates: scripts work in CSS pixels and multiply by the `scale` they are given when they
report boxes, because the API speaks screenshot pixels.
"""

from __future__ import annotations

from pathlib import Path

_SCRIPTS = Path(__file__).with_name("scripts")


def _read(name: str) -> str:
    return (_SCRIPTS / name).read_text(encoding="utf-8")


_HELPERS = _read("helpers.js")

PAGE_CONTEXT = _read("page_context.js")
URL_AND_TITLE = _read("url_and_title.js")
OBSERVE = _HELPERS + _read("observe.js")
STEP_FIND = _HELPERS + _read("step_find.js")
SCRAPE = _read("markdown.js") + _read("scrape.js")
# A batch job's page (workers/browser/job_page.py): everything after the load in one script,
# the `scrape` extraction inlined as a function body.
JOB_AFTER_LOAD = _read("job_after_load.js").replace("/*SCRAPE_BODY*/", SCRAPE)
JOB_RETRY_AFTER = _read("job_retry_after.js")
# Saved state (workers/browser/saved_state.py): async function bodies run in a scratch tab.
STATE_EXPORT = _read("state_codec.js") + _read("state_export.js")
STATE_IMPORT = _read("state_codec.js") + _read("state_import.js")
