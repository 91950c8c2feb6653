from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from accounts.lockout import client_ip, lockout_record_failure, lockout_retry_after
from accounts.models import Account, ApiKey, Plan
from accounts.services import hash_api_key
from project.exceptions import TooManyRequests
from project.rows import as_loaded, hot_cursor

# Writing last_used_at on every request would make every read a write; a minute is precise enough.
_LAST_USED_RESOLUTION = timedelta(seconds=60)

# Every request runs this: one plain query for key, account and plan, no ORM round.
_KEY_ACCOUNT_PLAN = """
    SELECT k.id, k.last_used_at, a.id, a.name, a.created_at,
           p.id, p.name, p.max_concurrent_sessions, p.max_lifetime_seconds, p.requests_per_minute,
           p.max_waiting_requests, ks.monthly_cap IS NOT NULL
    FROM accounts_apikey k
    JOIN accounts_account a ON a.id = k.account_id
    JOIN accounts_plan p ON p.id = a.plan_id
    LEFT JOIN billing_keyspend ks ON ks.api_key_id = k.id
    WHERE k.hashed_key = %s AND k.revoked_at IS NULL AND a.is_active
"""


@dataclass(frozen=True)
class RequestKey:
    """The API key a request authenticated with (request.auth): what charges record."""

    id: int
    # A monthly spend cap is set on it (billing.spend_caps): its accepts check the cap.
    spend_capped: bool


def account_for_key(raw_key: str) -> tuple[Account, RequestKey, datetime | None] | None:
    """(account with its plan, the key, key's last use) for a live key of an active account.

    No cache: a revoked key is refused from the next request on."""
    with hot_cursor() as cursor:
        cursor.execute(_KEY_ACCOUNT_PLAN, [hash_api_key(raw_key)])
        row = cursor.fetchone()
    if row is None:
        return None
    (
        key_id,
        last_used_at,
        account_id,
        name,
        created_at,
        plan_id,
        plan_name,
        concurrent,
        lifetime,
        rpm,
        waiting,
        capped,
    ) = row
    plan = as_loaded(
        Plan(
            id=plan_id,
            name=plan_name,
            max_concurrent_sessions=concurrent,
            max_lifetime_seconds=lifetime,
            requests_per_minute=rpm,
            max_waiting_requests=waiting,
        )
    )
    account = as_loaded(
        Account(id=account_id, name=name, plan_id=plan_id, is_active=True, created_at=created_at)
    )
    account.plan = plan
    return account, RequestKey(id=key_id, spend_capped=bool(capped)), last_used_at


class ApiKeyAuthentication(BaseAuthentication):
    """`Authorization: Bearer <key>`; repeated failures from one IP lock that IP out.

    The key is checked first: a valid key is never refused by the lockout, so nobody can lock a
    tenant out by failing in its name (with a spoofed or shared address). While locked, a wrong
    key answers 429 instead of 401; with keys of 256 random bits the lockout only slows noise,
    and a request without credentials is not a failed authentication.
    """

    def authenticate(self, request: Request) -> tuple[Any, RequestKey]:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header.strip():
            raise exceptions.AuthenticationFailed("Missing API key: send 'Authorization: Bearer <key>'.")
        scheme, _, raw_key = header.partition(" ")
        raw_key = raw_key.strip()
        found = account_for_key(raw_key) if scheme.lower() == "bearer" and raw_key else None
        if found is None:
            ip = client_ip(request._request)
            retry_after = lockout_retry_after(ip)
            if retry_after is not None:
                raise TooManyRequests(
                    "Too many failed authentications from this address; try again later.",
                    code="auth_locked_out",
                    retry_after=retry_after,
                )
            lockout_record_failure(ip)
            if scheme.lower() != "bearer" or not raw_key:
                raise exceptions.AuthenticationFailed("Missing API key: send 'Authorization: Bearer <key>'.")
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        account, key, last_used_at = found
        now = timezone.now()
        if last_used_at is None or now - last_used_at > _LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=key.id).update(last_used_at=now)
        # request.auth is the key's id and whether it has a spend cap: nothing reads more of it.
        return account, key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


def request_account(request: Request) -> Account:
    """The account an API request authenticated as (every API view requires one)."""
    return cast(Account, request.user)


def request_key(request: Request) -> RequestKey | None:
    """The API key of the request (None for a request authenticated otherwise)."""
    auth = request.auth
    return auth if isinstance(auth, RequestKey) else None
