"""Placement with a warm pool per flavour (sessions/placement.py), on rows alone: a create claims
only a ready warm browser of its own flavour, and the pools of both flavours share the host's
capacity (BROWSERS_PER_HOST). With real browsers: tests/flows/test_fleet.py."""

from __future__ import annotations

import pytest
from django.utils import timezone

from sessions import placement
from sessions.models import WarmBrowser, WorkerHost

pytestmark = pytest.mark.django_db


@pytest.fixture
def host(settings) -> str:
    settings.BROWSER_BACKEND = "local"
    placement.host_heartbeat(name="host-f", capacity=4, pool_sizes={"chromium": 2, "headless_shell": 1})
    WorkerHost.objects.exclude(pk="host-f").delete()  # only this host is alive here
    return "host-f"


def _warm(host: str, flavour: str, state: str = "ready") -> WarmBrowser:
    return WarmBrowser.objects.create(host=host, flavour=flavour, state=state, created_at=timezone.now())


def test_the_heartbeat_records_each_pool_size(host):
    row = WorkerHost.objects.get(pk=host)
    assert (row.pool_size, row.pool_size_headless_shell) == (2, 1)


def test_a_create_claims_only_a_warm_browser_of_its_flavour(host):
    full = _warm(host, "chromium")
    shell = _warm(host, "headless_shell")
    chosen = placement.placement_choose(now=timezone.now(), flavour="headless_shell")
    assert chosen.warm is not None and chosen.warm.pk == shell.pk
    # None of the shell's left: the next shell create starts cold on the host, the full one stays.
    again = placement.placement_choose(now=timezone.now(), flavour="headless_shell")
    assert again.warm is None and again.host == host
    assert WarmBrowser.objects.filter(pk=full.pk).exists()
    chosen = placement.placement_choose(now=timezone.now(), flavour="chromium")
    assert chosen.warm is not None and chosen.warm.pk == full.pk


def test_both_pools_share_the_hosts_capacity(host):
    _warm(host, "chromium")
    _warm(host, "chromium", state="starting")
    _warm(host, "headless_shell")
    # Capacity 4, three pool browsers: one more fits, whichever flavour asks first.
    assert placement.warm_browsers_reserve(host=host, pool_size=3, capacity=4, flavour="headless_shell") != []
    assert placement.warm_browsers_reserve(host=host, pool_size=3, capacity=4, flavour="chromium") == []
    assert placement.warm_browsers_reserve(host=host, pool_size=3, capacity=4, flavour="headless_shell") == []
    assert placement.host_loads([host])[host] == 4
    pooled = WarmBrowser.objects.filter(host=host)
    assert sorted(pooled.values_list("flavour", flat=True)) == ["chromium"] * 2 + ["headless_shell"] * 2
