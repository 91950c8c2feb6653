"""The navigation URL check reads URLs as a browser does (WHATWG) and hands back what it checked.

No network: hosts here are address literals or `localhost`, which resolve without DNS.
"""

from __future__ import annotations

import ipaddress

import pytest

from project.egress_allow import parse_egress_allow
from sessions.action_specs import check_navigation_target
from sessions.url_policy import BlockedAddress, InvalidURL, address_refusal, navigation_url

PUBLIC = "93.184.215.14"  # a public literal: parsed and classified, never contacted


@pytest.fixture(autouse=True)
def _policy(settings):
    settings.ALLOW_PRIVATE_NETWORK_TARGETS = False
    settings.BROWSER_EGRESS_ALLOW = ["127.0.0.1/32"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("http://127.0.0.1:8000/a", "http://127.0.0.1:8000/a"),
        ("HTTP://127.0.0.1:80/a/../b?q=1#f", "http://127.0.0.1/b?q=1#f"),
        (f"https://{PUBLIC}/x", f"https://{PUBLIC}/x"),
        (f"http://{PUBLIC}/a%20b?c=%41", f"http://{PUBLIC}/a%20b?c=%41"),
        (f"http://{PUBLIC}/path@with-at?x=@", f"http://{PUBLIC}/path@with-at?x=@"),
        ("  http://127.0.0.1/  ", "http://127.0.0.1/"),
        # An allowed address written in another form comes back in the one form the browser uses.
        ("http://2130706433/", "http://127.0.0.1/"),
        ("http://0x7f.1/", "http://127.0.0.1/"),
    ],
)
def test_allowed_urls_come_back_serialised(raw, expected):
    assert navigation_url(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        # Backslash: Python sees host 127.0.0.1 (or the public one), a browser sees 127.0.0.2.
        "http://127.0.0.2:8000\\x@127.0.0.1/c1",
        f"http://127.0.0.2:8000\\x@{PUBLIC}/c1",
        "http:\\\\127.0.0.2\\x",
        # Userinfo, with or without a password.
        "http://127.0.0.1@127.0.0.2/",
        "http://user:pw@127.0.0.1/",
        f"http://{PUBLIC}:80@127.0.0.2/",
        # Control and whitespace characters: a browser drops tab and newline anywhere.
        "http://127.0.0.1\t.evil/",
        "http://127.0.\n0.2/",
        "http://127.0.0.2\r/",
        "http://127.0.0.1/a b",
        "http://127.0.0.1\x00.example/",
        "http://127.0.0.1\u00a0/",
        "http://127.0.0.1\u200b/",
        # Not http(s), or no host.
        "javascript:alert(1)",
        "file:///etc/passwd",
        "ftp://127.0.0.1/",
        "about:blank",
        "http://",
        "not a url",
        "http://[::1/",
        "http://256.0.0.1/",
    ],
)
def test_ambiguous_or_malformed_urls_are_invalid(raw):
    with pytest.raises(InvalidURL) as caught:
        navigation_url(raw)
    assert caught.value.code == "invalid_url"


@pytest.mark.parametrize(
    "raw",
    [
        "http://127.0.0.2/",
        "http://127%2E0%2E0%2E2/",  # percent-encoded dots
        "http://2130706434/",  # decimal
        "http://0x7f000002/",  # hex
        "http://0177.0.0.02/",  # octal
        "http://0x7f.0.0.2/",
        "http://127.2/",  # short form
        "http://127.0.2/",
        "http://[::ffff:127.0.0.2]/",  # IPv4-mapped
        "http://[::ffff:7f00:2]/",
        "http://[::ffff:127.0.0.1]/",  # mapped forms are refused even for an allowed v4
        "http://[::127.0.0.2]/",  # IPv4-compatible
        "http://[::1]/",
        "http://[0:0:0:0:0:0:0:1]/",
        "http://0.0.0.0/",
        "http://0/",
        "http://[::]/",
        "http://10.0.0.1/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",  # CGNAT
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        "http://[fec0::1]/",
        "http://224.0.0.1/",
        "http://239.255.255.250/",
        "http://[ff02::1]/",
        "http://240.0.0.1/",
        "http://255.255.255.255/",
        "http://198.18.0.1/",
        "http://[2002:7f00:2::]/",  # 6to4 carrying 127.0.0.2
        "http://[2002:a00:1::]/",  # 6to4 carrying 10.0.0.1
        "http://[2001:0:4136:e378:8000:63bf:80ff:fffd]/",  # Teredo carrying 127.0.0.2
        "http://[64:ff9b::a00:1]/",  # NAT64 carrying 10.0.0.1
        "http://[64:ff9b::7f00:2]/",
        "http://localhost/",  # ::1 is not allowed, and every answer must be
        "http://anything.localhost:9/",  # the browser resolves *.localhost to loopback itself
    ],
)
def test_private_and_internal_targets_are_blocked(raw):
    with pytest.raises(BlockedAddress) as caught:
        navigation_url(raw)
    assert caught.value.code == "blocked_address"
    assert "private" in caught.value.detail or "metadata" in caught.value.detail


def test_the_old_check_let_a_backslash_reach_a_private_host():
    # urlsplit reads the host as the public address; a browser opens 127.0.0.2.
    with pytest.raises(InvalidURL):
        check_navigation_target(f"http://127.0.0.2:8000\\x@{PUBLIC}/c1")


@pytest.mark.parametrize(
    ("allow", "raw", "allowed"),
    [
        (["127.0.0.0/30"], "http://127.0.0.2:9/", True),
        (["127.0.0.2:8080"], "http://127.0.0.2:8080/", True),
        (["127.0.0.2:8080"], "http://127.0.0.2:8081/", False),
        (["[::1]:9"], "http://[::1]:9/", True),
        (["::1"], "http://[::1]/", True),
        (["localhost:9"], "http://localhost:9/", True),  # named host and port, any address
        (["localhost:9"], "http://localhost:10/", False),
        (["169.254.0.0/16"], "http://169.254.169.254/", False),  # metadata needs an exact entry
        (["169.254.169.254"], "http://169.254.169.254/", True),
        ([], "http://127.0.0.1/", False),
    ],
)
def test_the_operator_allow_list(settings, allow, raw, allowed):
    settings.BROWSER_EGRESS_ALLOW = allow
    if allowed:
        assert navigation_url(raw)
    else:
        with pytest.raises(BlockedAddress):
            navigation_url(raw)


def test_development_mode_allows_private_but_not_metadata_or_ambiguity(settings):
    settings.ALLOW_PRIVATE_NETWORK_TARGETS = True
    settings.BROWSER_EGRESS_ALLOW = []
    assert navigation_url("http://10.0.0.1/x") == "http://10.0.0.1/x"
    with pytest.raises(BlockedAddress):
        navigation_url("http://169.254.169.254/")
    with pytest.raises(InvalidURL):
        navigation_url("http://127.0.0.2\\x@127.0.0.1/")


@pytest.mark.parametrize(
    "entry", ["nonsense entry", "127.0.0.1:99999", "[::1]", "10.0.0.0/33", "host:", "a..b:80", ":80"]
)
def test_malformed_allow_entries_are_refused(entry):
    with pytest.raises(ValueError):
        parse_egress_allow([entry])


def test_public_addresses_pass_the_classifier():
    for text in (PUBLIC, "1.1.1.1", "2606:4700:4700::1111", "2002:5db8:d70e::"):
        assert address_refusal(ipaddress.ip_address(text)) is None, text
