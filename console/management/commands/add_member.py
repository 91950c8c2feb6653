from __future__ import annotations

from typing import Any

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.validators import validate_email

from accounts.models import Account, Membership
from accounts.services import member_add
from console.invitations import invitation_send


class Command(BaseCommand):
    help = (
        "Make EMAIL a member (or owner) of ACCOUNT (its id or its exact name) in the console. Without "
        "--password, a new user gets an invitation email with a link to choose a password."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("account", help="the account's id or exact name")
        parser.add_argument("email")
        parser.add_argument("--role", choices=Membership.Role.values, default=Membership.Role.MEMBER)
        parser.add_argument("--password", default=None, help="set this password (no invitation is sent)")
        parser.add_argument(
            "--invite", action="store_true", help="send the invitation email even to an existing user"
        )

    def handle(
        self,
        *args: Any,
        account: str,
        email: str,
        role: str,
        password: str | None,
        invite: bool,
        **options: Any,
    ) -> None:
        found = _account(account)
        try:
            validate_email(email)
        except ValidationError as exc:
            raise CommandError(f"{email!r} is not an email address") from exc
        if password is not None:
            try:
                validate_password(password)
            except ValidationError as exc:
                raise CommandError(" ".join(exc.messages)) from exc
        membership, created = member_add(account=found, email=email, role=role, password=password)
        self.stdout.write(f"{membership.user.email} is {role} of account {found.pk} ({found.name}).")
        if password is None and (created or invite or not membership.user.has_usable_password()):
            link = invitation_send(membership=membership)
            self.stdout.write(f"Invitation sent to {membership.user.email}; its link: {link}")


def _account(ref: str) -> Account:
    account = None
    if ref.isdigit():
        account = Account.objects.filter(pk=int(ref)).first()
    if account is None:
        matches = list(Account.objects.filter(name=ref)[:2])
        if len(matches) > 1:
            raise CommandError(f"several accounts are named {ref!r}: give its id")
        account = matches[0] if matches else None
    if account is None:
        raise CommandError(f"no account {ref!r}")
    return account
