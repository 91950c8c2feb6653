"""Webhooks: a delivery row per event (idempotent), queued for the webhooks worker, and what the
worker learns of each attempt. Delivery itself (HTTP, signing, retries) is workers/job_tasks.py."""

from __future__ import annotations

from typing import Any

from django.db.models import F
from django.utils import timezone

from jobs import dispatch
from jobs.models import Job, JobItem, WebhookDelivery


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
    hook = job.webhook
    if not hook:
        return
    events = hook.get("events") or ["page", "page_failed", "completed", "cancelled"]
    if event not in events:
        return
    suffix = data.get("item_id", "job")
    payload = {"event": event, "job_id": job.pk, "created_at": timezone.now().isoformat(), "data": data}
    delivery, created = WebhookDelivery.objects.get_or_create(
        idempotency_key=f"{job.pk}:{event}:{suffix}",
        defaults={"job": job, "event": event, "payload": payload},
    )
    if created:
        dispatch.webhook_deliver(delivery.pk)


def webhook_target(*, delivery_id: int) -> tuple[WebhookDelivery, dict[str, Any]] | None:
    delivery = WebhookDelivery.objects.select_related("job").filter(pk=delivery_id).first()
    if delivery is None or delivery.status != WebhookDelivery.Status.PENDING or not delivery.job.webhook:
        return None
    return delivery, delivery.job.webhook


def webhook_attempted(
    *, delivery_id: int, ok: bool, status_code: int | None, error: str, final: bool
) -> None:
    now = timezone.now()
    if ok:
        status = WebhookDelivery.Status.DELIVERED
    else:
        status = WebhookDelivery.Status.FAILED if final else WebhookDelivery.Status.PENDING
    WebhookDelivery.objects.filter(pk=delivery_id, status=WebhookDelivery.Status.PENDING).update(
        attempts=F("attempts") + 1,
        last_status_code=status_code,
        last_error=error[:500],
        status=status,
        delivered_at=now if ok else None,
    )
