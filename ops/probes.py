"""Liveness and readiness probes for load balancers, Docker and Kubernetes.

Plain Django views: no API key, no lockout, no session. /healthz answers while the process can
answer at all; /readyz checks what a request needs: PostgreSQL, Redis and a live worker, and
says which failed (and the workers' names) only to a metrics reader.
"""

from __future__ import annotations

import time
from typing import Any

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from ops.metrics import metrics_reader
from project.exceptions import error_body
from project.heartbeat import heartbeats_read
from project.redis import one_per_process

# A probe must answer before the orchestrator's own timeout (Docker's is 3 s below).
_PROBE_TIMEOUT_SECONDS = 2.0


@one_per_process
def _probe_redis(url: str) -> redis.Redis:
    # Not the shared client: that one waits forever on a hung socket, a probe must not.
    return redis.Redis.from_url(
        url, socket_timeout=_PROBE_TIMEOUT_SECONDS, socket_connect_timeout=_PROBE_TIMEOUT_SECONDS
    )


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def readiness_check() -> dict[str, Any]:
    """Each dependency's state; `failed` names the ones that are not ready."""
    checks: dict[str, Any] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        checks["postgresql"] = {"ok": True}
    except Exception as exc:  # any driver error means not ready; the body says which
        checks["postgresql"] = {"ok": False, "error": str(exc)[:200]}
    client = _probe_redis(settings.REDIS_URL)
    try:
        client.ping()
        checks["redis"] = {"ok": True}
    except redis.RedisError as exc:
        checks["redis"] = {"ok": False, "error": str(exc)[:200]}
    if checks["redis"]["ok"]:
        try:
            ages = heartbeats_read(client=client)
        except redis.RedisError as exc:
            checks["workers"] = {"ok": False, "error": str(exc)[:200]}
        else:
            bound = settings.WORKER_HEARTBEAT_MAX_AGE_SECONDS
            fresh = {name: round(age, 1) for name, age in ages.items() if age <= bound}
            checks["workers"] = {
                "ok": bool(fresh),
                "online": fresh,
                "max_age_seconds": bound,
                **({} if fresh else {"error": f"no worker heartbeat in the last {bound} s"}),
            }
    else:
        checks["workers"] = {"ok": False, "error": "unknown: Redis is not answering"}
    failed = [name for name, check in checks.items() if not check["ok"]]
    return {"checks": checks, "failed": failed}


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Public: only ready or not. With the metrics credential (METRICS_TOKEN or
    METRICS_ALLOW_CIDRS): each check, the workers' names and the errors' text, which name hosts
    and ports an outsider has no business learning."""
    started = time.monotonic()
    result = readiness_check()
    elapsed_ms = round((time.monotonic() - started) * 1000, 1)
    if not metrics_reader(request):
        if result["failed"]:
            body = error_body(status_code=503, code="not_ready", detail="Not ready.")
            return JsonResponse(body, status=503)
        return JsonResponse({"status": "ok"})
    if result["failed"]:
        body = error_body(
            status_code=503,
            code="not_ready",
            detail="Not ready: " + ", ".join(result["failed"]) + ".",
            **result,
            elapsed_ms=elapsed_ms,
        )
        return JsonResponse(body, status=503)
    return JsonResponse({"status": "ok", **result, "elapsed_ms": elapsed_ms})
