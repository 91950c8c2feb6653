"""The catalogue of event types an account endpoint may subscribe to."""

from __future__ import annotations

SESSION_STARTED = "session.started"
SESSION_ENDED = "session.ended"
SESSION_CRASHED = "session.crashed"
SESSION_EXPIRING = "session.expiring"
CREDITS_LOW = "credits.low"
CREDITS_EXHAUSTED = "credits.exhausted"
JOB_COMPLETED = "job.completed"
JOB_FAILED = "job.failed"
JOB_CANCELLED = "job.cancelled"
JOB_PAGE = "job.page"
JOB_PAGE_FAILED = "job.page_failed"
# Sent only to the endpoint it was asked for (POST /v1/webhooks/{id}/test).
WEBHOOK_TEST = "webhook.test"

EVENT_TYPES = (
    SESSION_STARTED,
    SESSION_ENDED,
    SESSION_CRASHED,
    SESSION_EXPIRING,
    CREDITS_LOW,
    CREDITS_EXHAUSTED,
    JOB_COMPLETED,
    JOB_FAILED,
    JOB_CANCELLED,
    JOB_PAGE,
    JOB_PAGE_FAILED,
)

# The per-job webhook of POST /v1/jobs names its events without the prefix.
JOB_WEBHOOK_EVENTS = {
    "page": JOB_PAGE,
    "page_failed": JOB_PAGE_FAILED,
    "completed": JOB_COMPLETED,
    "failed": JOB_FAILED,
    "cancelled": JOB_CANCELLED,
}
