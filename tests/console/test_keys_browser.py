"""The API keys page in a real headless Chromium: an owner signs in, creates a key, uses it with
the tzafon SDK, revokes it on the page, and the SDK's next call is refused (401)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import tzafon
from selenium.webdriver.common.by import By

from accounts.models import ApiKey
from tests.console.conftest import PASSWORD, Tenant
from tests.ops.conftest import browser  # noqa: F401  (the headless Chromium fixture)
from tests.support.page_browser import click_and_wait, open_page, severe_console_errors


def _sdk(base_url: str, key: str) -> tzafon.Lightcone:
    return tzafon.Lightcone(api_key=key, base_url=base_url, max_retries=0, http_client=httpx.Client())


@pytest.mark.django_db(transaction=True)
def test_a_key_made_in_the_console_works_with_the_sdk_until_it_is_revoked(
    browser: Any,  # noqa: F811  (the fixture imported above)
    live_server: Any,
    make_tenant: Any,
) -> None:
    tenant: Tenant = make_tenant("initech")
    base = live_server.url
    open_page(browser, f"{base}/console/login/?next=/console/keys/")
    browser.find_element(By.ID, "id_username").send_keys("owner@initech.test")
    browser.find_element(By.ID, "id_password").send_keys(PASSWORD)
    click_and_wait(browser, browser.find_element(By.CSS_SELECTOR, "button[type=submit].primary"))
    assert browser.current_url.endswith("/console/keys/"), browser.current_url

    browser.find_element(By.ID, "key-name").send_keys("from the browser")
    click_and_wait(browser, browser.find_element(By.CSS_SELECTOR, "form[action$='/keys/create/'] button"))
    raw_key = browser.find_element(By.ID, "new-key-value").text.strip()
    assert raw_key.startswith("bf_")
    copy = browser.find_element(By.CSS_SELECTOR, "[data-copy-target]")
    assert copy.is_displayed()  # keys.js ran (the button is hidden without it)

    sdk = _sdk(base, raw_key)
    assert len(sdk.computers.list()) == 0  # the key works: the account has no sessions yet
    key = ApiKey.objects.get(account=tenant.account, name="from the browser")

    row = browser.find_element(By.CSS_SELECTOR, f"tr[data-key-id='{key.pk}']")
    click_and_wait(browser, row.find_element(By.CSS_SELECTOR, "form[action$='/revoke/'] button"))
    assert "is revoked" in browser.find_element(By.CSS_SELECTOR, ".messages").text

    with pytest.raises(tzafon.AuthenticationError):
        sdk.computers.list()
    assert _sdk(base, tenant.raw_key).computers.list() is not None  # the other key still works
    severe = severe_console_errors(browser)
    assert severe == [], severe
