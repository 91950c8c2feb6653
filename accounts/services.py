from __future__ import annotations

import hashlib
import secrets

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from accounts.models import Account, ApiKey, Membership, Plan
from billing.ledger import balance_open

KEY_PREFIX = "bf_"
_VISIBLE_PREFIX_LENGTH = 11  # "bf_" and 8 random characters: enough to tell keys apart


def hash_api_key(raw_key: str) -> str:
    # Keys are 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(raw_key.encode()).hexdigest()


def api_key_create(*, account: Account, name: str = "") -> tuple[ApiKey, str]:
    """Create a key; the raw key is returned here once and never stored."""
    raw_key = KEY_PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey.objects.create(
        account=account,
        name=name,
        prefix=raw_key[:_VISIBLE_PREFIX_LENGTH],
        hashed_key=hash_api_key(raw_key),
    )
    return api_key, raw_key


def api_key_revoke(*, api_key: ApiKey) -> None:
    ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


def account_create(*, name: str, plan_name: str, credits: int = 0) -> tuple[Account, str]:
    """Create an account with its balance (opening grant in the ledger) and a first API key."""
    plan = Plan.objects.get(name=plan_name)
    with transaction.atomic():
        account = Account.objects.create(name=name, plan=plan)
        balance_open(account_id=account.pk, grant=credits)
        _, raw_key = api_key_create(account=account, name="default")
    return account, raw_key


def member_add(
    *, account: Account, email: str, role: str = "member", password: str | None = None
) -> tuple[Membership, bool]:
    """Make the user with this email (created if new, its username the email) a member of the
    account, or change their role. Returns the membership and whether the user was created. A new
    user without a password gets an unusable one: they set it through the invitation link."""
    email = User.objects.normalize_email(email).strip().lower()
    if role not in Membership.Role.values:
        raise ValueError(f"role must be one of {', '.join(Membership.Role.values)}")
    with transaction.atomic():
        user, created = User.objects.get_or_create(username=email, defaults={"email": email})
        if password is not None:
            user.set_password(password)
            user.save(update_fields=["password"])
        elif created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        membership, _ = Membership.objects.update_or_create(
            user=user, account=account, defaults={"role": role}
        )
    return membership, created
