from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from accounts.lockout import client_ip, lockout_record_failure, lockout_retry_after
from accounts.models import ApiKey
from accounts.services import hash_api_key
from project.exceptions import TooManyRequests

# Writing last_used_at on every request would make every read a write; a minute is precise enough.
_LAST_USED_RESOLUTION = timedelta(seconds=60)


class ApiKeyAuthentication(BaseAuthentication):
    """`Authorization: Bearer <key>`; repeated failures from one IP lock that IP out."""

    def authenticate(self, request: Request) -> tuple[Any, ApiKey]:
        ip = client_ip(request._request)
        retry_after = lockout_retry_after(ip)
        if retry_after is not None:
            raise TooManyRequests(
                "Too many failed authentications from this address; try again later.",
                code="auth_locked_out",
                retry_after=retry_after,
            )
        scheme, _, raw_key = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        raw_key = raw_key.strip()
        if scheme.lower() != "bearer" or not raw_key:
            lockout_record_failure(ip)
            raise exceptions.AuthenticationFailed("Missing API key: send 'Authorization: Bearer <key>'.")
        api_key = (
            ApiKey.objects.select_related("account", "account__plan")
            .filter(hashed_key=hash_api_key(raw_key), revoked_at__isnull=True, account__is_active=True)
            .first()
        )
        if api_key is None:
            lockout_record_failure(ip)
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        now = timezone.now()
        if api_key.last_used_at is None or now - api_key.last_used_at > _LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        return api_key.account, api_key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'
