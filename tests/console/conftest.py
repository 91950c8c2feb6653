"""Console personas: an account with an owner and a member, and another account (the stranger)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client as PageClient

from accounts.models import Account, Membership
from accounts.services import account_create, member_add
from tests.ops.conftest import browser  # noqa: F401  # the fixture: headless Chromium, its console log readable

PASSWORD = "correct horse battery staple"


@dataclass
class Tenant:
    account: Account
    raw_key: str
    owner: Membership
    member: Membership

    def pages(self, *, as_owner: bool = True) -> PageClient:
        """A browser-like client signed in as the owner (or the plain member)."""
        page_client = PageClient()
        page_client.force_login((self.owner if as_owner else self.member).user)
        return page_client


@pytest.fixture
def make_tenant(plans: None) -> Any:
    def make(name: str = "acme", *, plan: str = "pro", credits: int = 10_000) -> Tenant:
        account, raw_key = account_create(name=name, plan_name=plan, credits=credits)
        owner, _ = member_add(account=account, email=f"owner@{name}.test", role="owner", password=PASSWORD)
        member, _ = member_add(account=account, email=f"member@{name}.test", role="member", password=PASSWORD)
        return Tenant(account=account, raw_key=raw_key, owner=owner, member=member)

    return make


@pytest.fixture
def tenant(make_tenant: Any) -> Tenant:
    return make_tenant("acme")


@pytest.fixture
def stranger(make_tenant: Any) -> Tenant:
    return make_tenant("globex")


# A 1x1 PNG: what a screenshot action stores.
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    b"\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7\x35\x81\x84\x00\x00\x00\x00IEND\xaeB`\x82"
)


@dataclass
class World:
    """What a tenant has done: an ended session with a navigate and a screenshot (charged through
    the ledger as the accept does), a started minute, and a job with two finished pages."""

    session_id: str
    action_ids: list[str]
    screenshot_token: str
    job_id: str


def make_world(tenant: Tenant) -> World:
    from django.utils import timezone

    from billing.ledger import ledger_post
    from billing.models import LedgerEntry
    from billing.services import session_minute_charge
    from jobs.models import ItemStatus, JobItem
    from jobs.services import JobSpec, job_submit
    from sessions.models import Action, ActionStatus, EndedReason, SessionStatus
    from sessions.screenshots import screenshot_save
    from tests.support.rows import session_row

    account = tenant.account
    now = timezone.now()
    session = session_row(
        account, status=SessionStatus.TERMINATED, ended_reason=EndedReason.USER, ended_at=now, started_at=now
    )
    token = screenshot_save(PNG)
    actions = []
    for kind, price, result in (
        ("navigate", 1, {"page_url": "http://127.0.0.1/"}),
        ("screenshot", 3, {"screenshot_token": token}),
    ):
        action = Action.objects.create(
            session=session,
            account=account,
            type=kind,
            params={"url": "http://127.0.0.1/"} if kind == "navigate" else {},
            status=ActionStatus.SUCCEEDED,
            result=result,
            price=price,
            started_at=now,
            finished_at=now,
        )
        ledger_post(
            account_id=account.pk,
            amount=-price,
            kind=LedgerEntry.Kind.ACTION,
            idempotency_key=f"action:{action.public_id}",
            session_id=session.pk,
            action_id=action.pk,
        )
        actions.append(action.public_id)
    session_minute_charge(account_id=account.pk, session_id=session.pk, minute=0)
    job, _ = job_submit(
        account=account,
        spec=JobSpec(
            items=[{"url": f"http://127.0.0.1:9/p/{n}"} for n in range(3)], scrape={"format": "text"}
        ),
    )
    items = list(JobItem.objects.filter(job=job).order_by("seq"))
    items[0].status, items[0].data, items[0].http_status = ItemStatus.SUCCEEDED, {"title": "=One"}, 200
    items[1].status, items[1].error_code, items[1].error_message = ItemStatus.FAILED, "http_error", "HTTP 500"
    for item in items[:2]:
        item.finished_at = now
        item.save()
    return World(session_id=session.pk, action_ids=actions, screenshot_token=token, job_id=job.pk)


@pytest.fixture
def world(tenant: Tenant) -> World:
    return make_world(tenant)


@pytest.fixture
def stranger_world(stranger: Tenant) -> World:
    return make_world(stranger)
