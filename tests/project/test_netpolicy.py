"""One address rule for the navigation check and the egress filter (project/netpolicy.py)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from project import netpolicy
from project.netpolicy import EgressPolicy
from sessions.url_policy import BlockedAddress, navigation_url

# Each once answered differently in the two checks (before they shared project/netpolicy.py).
DISAGREED = [
    ("192.88.99.1", False),  # 6to4 relay anycast: global to Python 3.11, refused by the URL check
    ("64:ff9b:1::a00:1", False),  # local-use NAT64 carrying 10.0.0.1
    ("2002:5db8:d70e::", False),  # 6to4 of a public address: the filter refused, the URL check not
    ("93.184.215.14", True),
    ("64:ff9b::5db8:d70e", True),  # NAT64 of a public address
]


def _url_allows(address: str, settings: Any, allow: list[str]) -> bool:
    settings.ALLOW_PRIVATE_NETWORK_TARGETS = False
    settings.BROWSER_EGRESS_ALLOW = allow
    host = f"[{address}]" if ":" in address else address
    try:
        navigation_url(f"http://{host}/")
    except BlockedAddress:
        return False
    return True


@pytest.mark.parametrize(("address", "allowed"), DISAGREED)
def test_the_navigation_check_and_the_filter_give_the_same_answer(
    address: str, allowed: bool, settings: Any
) -> None:
    assert EgressPolicy.parse("").address_allowed(address, 80) is allowed
    assert _url_allows(address, settings, []) is allowed


def test_a_range_never_opens_a_metadata_address_in_either_check(settings: Any) -> None:
    broad = EgressPolicy.parse("169.254.0.0/16")
    assert broad.address_allowed("169.254.1.1", 80)
    assert not broad.address_allowed("169.254.169.254", 80)
    assert not _url_allows("169.254.169.254", settings, ["169.254.0.0/16"])
    exact = EgressPolicy.parse("169.254.169.254")
    assert exact.address_allowed("169.254.169.254", 80)
    assert _url_allows("169.254.169.254", settings, ["169.254.169.254"])


@pytest.mark.parametrize(
    ("env", "private_allowed"),
    [
        ({"BROWSERFLEET_ENV": "production"}, False),
        ({"BROWSERFLEET_ENV": "development"}, True),
        ({"BROWSERFLEET_ENV": "development", "ALLOW_PRIVATE_NETWORK_TARGETS": "false"}, False),
        ({"BROWSERFLEET_ENV": "production", "ALLOW_PRIVATE_NETWORK_TARGETS": "true"}, True),
    ],
)
def test_the_filter_reads_allow_private_network_targets_as_settings_do(
    env: dict[str, str], private_allowed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ALLOW_PRIVATE_NETWORK_TARGETS", raising=False)
    monkeypatch.delenv("BROWSER_EGRESS_ALLOW", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    netpolicy.policy.cache_clear()
    try:
        assert netpolicy.address_allowed("10.0.0.1", 80) is private_allowed
        assert netpolicy.address_allowed("127.0.0.1", 80) is private_allowed
        assert not netpolicy.address_allowed("169.254.169.254", 80)  # never, in any mode
        assert not netpolicy.address_allowed("::ffff:169.254.169.254", 80)
        assert netpolicy.address_allowed("1.1.1.1", 443)
    finally:
        netpolicy.policy.cache_clear()


REFUSED = ["10.0.0.1", "224.0.0.1", "2002:a00:1::", "2001:0:4136:e378:8000:63bf:80ff:fffd", "::ffff:10.0.0.1",
           "169.254.169.254", "64:ff9b::a00:1", "fec0::1"]  # fmt: skip


def test_every_refusal_names_private_or_metadata() -> None:
    for text in REFUSED:
        reason = netpolicy.refusal_reason(ipaddress.ip_address(text))
        assert reason is not None and ("private" in reason or "metadata" in reason), (text, reason)
