"""Tab operations: list, open, switch, close. They move the main tab themselves."""

from __future__ import annotations

from typing import Any

from selenium.common.exceptions import (
    InvalidSessionIdException,
    WebDriverException,
)
from selenium.webdriver.remote.command import Command

from sessions.action_specs import MAX_TABS
from workers.browser import page_scripts
from workers.browser.executor.failures import message
from workers.browser.executor.page import raise_if_error_page
from workers.browser.executor.run import (
    ActionFailed,
    Handler,
    Params,
    Run,
    make_main,
    visiting,
)


def _tab_info(run: Run) -> dict[str, Any]:
    return {"tab_id": run.tab, **run.driver.execute_script(page_scripts.URL_AND_TITLE)}


def _do_list_tabs(run: Run, params: Params) -> dict[str, Any]:
    handles = run.driver.window_handles
    # Window handles are DevTools target ids: one call names every tab without visiting it.
    targets = {t.get("targetId"): t for t in run.driver.cdp("Target.getTargets").get("targetInfos", [])}
    tabs = []
    for handle in handles:
        target = targets.get(handle, {})
        tabs.append(
            {
                "id": handle,
                "url": target.get("url", ""),
                "title": target.get("title", ""),
                "is_main_tab": handle == run.main_tab,
            }
        )
    return {"tabs": tabs}


def _do_new_tab(run: Run, params: Params) -> dict[str, Any]:
    if len(run.driver.window_handles) >= MAX_TABS:
        raise ActionFailed(f"A session has at most {MAX_TABS} tabs; close one first")
    previous = run.main_tab
    tab_id = str(run.driver.execute(Command.NEW_WINDOW, {"type": "tab"})["value"]["handle"])
    make_main(run.driver, tab_id, run.display)
    run.main_tab = run.tab = tab_id
    url = params.get("url")
    if url:
        try:
            try:
                run.driver.get(str(url))
            except WebDriverException as exc:
                if isinstance(exc, InvalidSessionIdException):
                    raise
                raise ActionFailed(f"Could not load {url}: {message(exc)}") from exc
            raise_if_error_page(run, dict(run.driver.execute_script(page_scripts.URL_AND_TITLE)), str(url))
        except ActionFailed as exc:
            # All or nothing: a tab whose page failed is closed, and the main tab stays as it was.
            run.driver.close()
            run.driver.tab_displays.pop(tab_id, None)
            make_main(run.driver, previous, run.display)
            run.main_tab = run.tab = previous
            raise ActionFailed(f"{exc} (the new tab was closed)") from exc
    return _tab_info(run)


def _tab_param(params: Params) -> str:
    tab_id = params.get("tab_id")
    if not tab_id:
        raise ActionFailed("tab_id is required")
    return str(tab_id)


def _do_switch_tab(run: Run, params: Params) -> dict[str, Any]:
    tab_id = _tab_param(params)
    make_main(run.driver, tab_id, run.display)
    run.main_tab = run.tab = tab_id
    return _tab_info(run)


def _do_close_tab(run: Run, params: Params) -> dict[str, Any]:
    tab_id = _tab_param(params)
    handles = [str(h) for h in run.driver.window_handles]
    if tab_id not in handles:
        raise ActionFailed(f"No tab with id {tab_id!r}")
    if len(handles) == 1:
        raise ActionFailed("Cannot close the last tab")
    if tab_id == run.main_tab:
        run.driver.close()
        # The tab before it takes over, as a browser does.
        index = handles.index(tab_id)
        successor = handles[index - 1] if index > 0 else handles[1]
        make_main(run.driver, successor, run.display)
        run.main_tab = run.tab = successor
    else:
        with visiting(run.driver, tab_id, back_to=run.main_tab):
            run.driver.close()
    run.driver.tab_displays.pop(tab_id, None)
    return {"closed_tab_id": tab_id, "main_tab_id": run.main_tab}


TAB_HANDLERS: dict[str, Handler] = {
    "list_tabs": _do_list_tabs,
    "new_tab": _do_new_tab,
    "switch_tab": _do_switch_tab,
    "close_tab": _do_close_tab,
}
