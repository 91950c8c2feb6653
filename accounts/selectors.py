"""Reads about accounts and their people."""

from __future__ import annotations

from accounts.models import Membership


def owner_emails(*, account_id: int) -> list[str]:
    """The addresses of an account's active owners: who receives its alerts and billing emails."""
    return list(
        Membership.objects.filter(account_id=account_id, role=Membership.Role.OWNER, user__is_active=True)
        .exclude(user__email="")
        .order_by("user__email")
        .values_list("user__email", flat=True)
    )


def memberships_of(*, user_id: int) -> list[Membership]:
    """A user's memberships in active accounts, oldest first (the console opens the first)."""
    return list(
        Membership.objects.filter(user_id=user_id, account__is_active=True)
        .select_related("account", "account__plan")
        .order_by("created_at", "pk")
    )
