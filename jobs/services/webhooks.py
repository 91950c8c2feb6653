"""Job events for webhooks: written to the webhook outbox (webhooks.services) in the caller's
transaction; signing, delivery and retries are the webhooks app's and its worker's."""

from __future__ import annotations

from typing import Any

from jobs.models import Job, JobItem, JobStatus
from webhooks import services as webhook_services
from webhooks.events import JOB_WEBHOOK_EVENTS


def webhook_item_event(item: JobItem) -> dict[str, Any]:
    return {
        "item_id": item.pk,
        "key": item.key,
        "url": item.url,
        "status": item.status,
        "http_status": item.http_status,
        "error": {"code": item.error_code, "message": item.error_message} if item.error_code else None,
        "credits": item.credits,
    }


def webhook_job_event(job: Job) -> dict[str, Any]:
    return {"status": job.status, "ended_reason": job.ended_reason}


def webhook_queue(job: Job, event: str, data: dict[str, Any]) -> None:
    """Record a job event in the webhook outbox, in the caller's transaction: for the job's own
    webhook (a per-job endpoint) and the account's endpoints that subscribe to its type."""
    if event == "completed" and job.status == JobStatus.FAILED:
        event = "failed"
    if job.webhook:
        webhook_services.job_endpoint_ensure(account_id=job.account_id, job_id=job.pk, webhook=job.webhook)
    suffix = data.get("item_id", "job")
    webhook_services.event_emit(
        account_id=job.account_id,
        type=JOB_WEBHOOK_EVENTS[event],
        data={"job_id": job.pk, **data},
        job_id=job.pk,
        idempotency_key=f"job:{job.pk}:{event}:{suffix}",
    )
