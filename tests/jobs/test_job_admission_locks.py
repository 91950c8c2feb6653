"""Job admission and a cancel of the same account at once (CI, 2026-12-03: the cancel answered
500 `deadlock detected`).

Admission locked the account row FOR UPDATE, then updated the account's queued jobs; a cancel
locks its job, ends it and releases its credit hold (a ledger line: its foreign key to the
account is checked at commit with FOR KEY SHARE, which FOR UPDATE blocks). A cancel between
admission's two steps waited on the account while admission waited on the job. Admission now
takes FOR NO KEY UPDATE, as session creates do: it still excludes creates and other admissions,
and lets the foreign-key checks of ledger lines through."""

from __future__ import annotations

import threading
from typing import Any

from jobs.models import Job, JobStatus
from jobs.services import JobSpec, admission, job_cancel, job_submit
from tests.jobs.conftest import api_for


def test_a_cancel_while_admission_holds_the_account_commits_and_neither_fails(
    seeded_committed: None, monkeypatch: Any
) -> None:
    _, account = api_for("pro")
    job, _ = job_submit(account=account, spec=JobSpec(items=[{"url": "http://127.0.0.1:9/a"}], scrape={}))
    assert Job.objects.get(pk=job.pk).credits_held > 0  # the cancel releases it: a ledger line
    locked, go = threading.Event(), threading.Event()
    real = admission.account_browsers_in_use

    def paused(*, account_id: int) -> int:
        locked.set()  # admission holds the account row now
        assert go.wait(timeout=30)
        return int(real(account_id=account_id))

    monkeypatch.setattr(admission, "account_browsers_in_use", paused)
    errors: list[BaseException] = []

    def run(call: Any) -> None:
        try:
            call()
        except BaseException as exc:
            errors.append(exc)
        finally:
            from django.db import connection

            connection.close()

    admit = threading.Thread(target=run, args=(lambda: admission._admit_account(account.pk),))
    admit.start()
    assert locked.wait(timeout=30)
    cancel = threading.Thread(target=run, args=(lambda: job_cancel(job=job),))
    cancel.start()
    cancel.join(timeout=5)
    cancelled_meanwhile = not cancel.is_alive()
    go.set()  # admission goes on to the account's jobs
    cancel.join(timeout=30)
    admit.join(timeout=30)
    assert not errors, errors
    assert cancelled_meanwhile, "the cancel waited for admission's lock on the account"
    assert Job.objects.get(pk=job.pk).status == JobStatus.CANCELLED
