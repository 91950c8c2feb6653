"""Batch jobs: submit, admission to browsers, item claims and results, billing, cancel, expiry.

One module per stage: `submit`, `admission`, `items` (claim and record), `finishing` (cancel, the
end, the Beat pass, the purge) and `webhooks` (delivery rows). Callers use the names below.

Lock order, everywhere: account row, then job row, then item rows, then the balance row
(inside billing.ledger). Each change is a short transaction; workers carry ids only.

Money: at submit the job's maximum cost is held (billing.services.job_hold_place). A try of a page
is claimed only when its price fits in what is held and not promised to tries already in flight
(`credits_pending`), so a job never spends past its hold or its max_credits. A try is charged
from the hold when its outcome is recorded, in the same transaction and keyed by the item and the
try, so a redelivery or a lost worker never charges twice. The end releases what is left.
"""

from __future__ import annotations

from jobs.services.admission import job_browser_attached, job_browser_end, job_browser_renew, jobs_admit
from jobs.services.finishing import (
    MAX_LOST_ATTEMPTS,
    Tick,
    job_browser_released,
    job_browsers_unreleased,
    job_cancel,
    job_finish_if_done,
    jobs_purge_expired,
    jobs_tick,
)
from jobs.services.items import (
    OUR_FAILURES,
    PROXY_FAILURE,
    Claim,
    PageOutcome,
    item_claim,
    item_record,
    retry_delay,
)
from jobs.services.proxies import job_end_unpaid, job_proxy_bill, job_uses_pool
from jobs.services.submit import (
    JobSpec,
    item_key,
    job_submit,
    job_submit_count_check,
    job_submit_plan,
    normalise_url,
    page_price,
    request_fingerprint,
)

__all__ = [
    "MAX_LOST_ATTEMPTS",
    "OUR_FAILURES",
    "PROXY_FAILURE",
    "Claim",
    "JobSpec",
    "PageOutcome",
    "Tick",
    "item_claim",
    "item_key",
    "item_record",
    "job_browser_attached",
    "job_browser_end",
    "job_browser_released",
    "job_browser_renew",
    "job_browsers_unreleased",
    "job_cancel",
    "job_end_unpaid",
    "job_finish_if_done",
    "job_proxy_bill",
    "job_submit",
    "job_submit_count_check",
    "job_submit_plan",
    "job_uses_pool",
    "jobs_admit",
    "jobs_purge_expired",
    "jobs_tick",
    "normalise_url",
    "page_price",
    "request_fingerprint",
    "retry_delay",
]
