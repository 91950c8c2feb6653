"""Production settings, as `manage.py` loads them in a fresh process (settings are read once)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# What docker-compose.yml sets for the web behind a TLS-terminating proxy.
COMPOSE_LIKE = {
    "BROWSERFLEET_ENV": "production",
    "DJANGO_SECURE_SSL_REDIRECT": "true",
    "DJANGO_SECURE_HSTS_SECONDS": "31536000",
    "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "DJANGO_SECURE_HSTS_PRELOAD": "true",
    "DJANGO_SECURE_COOKIES": "true",
    "DJANGO_SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto",
    "DJANGO_DEBUG": "false",
}


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "BROWSERFLEET_ENV"))}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_in_production_settings():
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        **COMPOSE_LIKE,
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DJANGO_DEBUG": "true", "DJANGO_SECRET_KEY": secrets.token_urlsafe(50)}, "DJANGO_DEBUG"),
        ({"DJANGO_SECRET_KEY": "short-but-set"}, "too weak"),
        ({"DJANGO_SECRET_KEY": "a" * 60}, "too weak"),
        ({"DJANGO_SECRET_KEY": "django-insecure-" + secrets.token_urlsafe(50)}, "too weak"),
        ({}, "DJANGO_SECRET_KEY must be set"),
    ],
)
def test_production_refuses_debug_and_weak_secret_keys(env, message):
    result = _manage("check", **{**COMPOSE_LIKE, **env})
    assert result.returncode != 0
    assert message in result.stderr
