"""The plans every installation starts with.

Used by the seeding data migration (with the historical model) and by tests after a table flush
(with the current one), so the numbers live in exactly one place.
"""

from __future__ import annotations

from typing import Any

HOUR = 3600
MB = 1024 * 1024

DEFAULT_PLANS: list[dict[str, Any]] = [
    {
        "name": "free",
        "max_concurrent_sessions": 2,
        "max_lifetime_seconds": 1 * HOUR,
        "requests_per_minute": 300,
        "max_job_urls": 100,
        "max_running_jobs": 1,
        "max_queued_jobs": 5,
        "max_waiting_requests": 8,
        "max_webhook_endpoints": 2,
        "saved_state_max_bytes": 10 * MB,
        "max_saved_states": 10,
        "saved_state_retention_days": 30,
        "recording_retention_days": 3,
        "recording_storage_bytes": 1024 * MB,
    },
    {
        "name": "pro",
        "max_concurrent_sessions": 10,
        "max_lifetime_seconds": 4 * HOUR,
        "requests_per_minute": 1200,
        "max_job_urls": 10_000,
        "max_running_jobs": 5,
        "max_queued_jobs": 50,
        "max_waiting_requests": 64,
        "max_webhook_endpoints": 10,
        "saved_state_max_bytes": 100 * MB,
        "max_saved_states": 100,
        "saved_state_retention_days": 30,
        "recording_retention_days": 14,
        "recording_storage_bytes": 20 * 1024 * MB,
    },
    {
        "name": "enterprise",
        "max_concurrent_sessions": None,
        "max_lifetime_seconds": 24 * HOUR,
        "requests_per_minute": 6000,
        "max_job_urls": 100_000,
        "max_running_jobs": None,
        "max_queued_jobs": 500,
        # A fairness rule, not a thread budget: a waiting request holds no web thread
        # (project/awaiting.py), only a Redis connection while it waits.
        "max_waiting_requests": 500,
        "max_webhook_endpoints": 50,
        "saved_state_max_bytes": 500 * MB,
        "max_saved_states": None,
        "saved_state_retention_days": 90,
        "recording_retention_days": 30,
        "recording_storage_bytes": 200 * 1024 * MB,
    },
]


def seed_plans(plan_model: Any) -> None:
    """Create the default plans that are missing; never overwrite an operator's edits."""
    # An early migration's historical model lacks later fields; a later migration fills them.
    known = {field.name for field in plan_model._meta.get_fields()}
    for plan in DEFAULT_PLANS:
        plan_model.objects.get_or_create(
            name=plan["name"], defaults={name: value for name, value in plan.items() if name in known}
        )
