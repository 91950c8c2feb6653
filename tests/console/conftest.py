"""Console personas: an account with an owner and a member, and another account (the stranger)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client as PageClient

from accounts.models import Account, Membership
from accounts.services import account_create, member_add

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
