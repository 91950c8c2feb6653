"""Staff who may only look cannot act (issue 19 item 14): cancelling a job and terminating a
session need the change permission, the operator pages the view permission, and a job's webhook
secret is never shown in the admin. Database only."""

from __future__ import annotations

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Permission, User
from django.test import Client

from jobs.models import Job
from jobs.services import JobSpec, job_submit
from sessions.models import BrowserSession
from sessions.services import SessionSpec, session_create
from tests.jobs import conftest as jobs_fixtures
from tests.jobs.conftest import api_for

seeded = jobs_fixtures.seeded  # plans and prices, database only

SECRET = "whsec-do-not-show-7f3a"


def _staff(*codenames: str) -> Client:
    user = User.objects.create_user(f"staff-{'-'.join(codenames) or 'none'}", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def job(seeded) -> Job:
    from accounts.models import Plan

    # Stays queued even when the suite's worker runs (another test may have started it).
    Plan.objects.filter(name="pro").update(max_running_jobs=0)
    _, account = api_for("pro")
    spec = JobSpec(
        items=[{"url": "http://127.0.0.1:9/"}],
        scrape={},
        webhook={"url": "http://127.0.0.1:9/hook", "secret": SECRET, "events": ["completed"]},
    )
    return job_submit(account=account, spec=spec)[0]


def test_view_only_staff_cannot_cancel_a_job(job):
    viewer = _staff("view_job")
    assert viewer.get("/admin/jobs/job/").status_code == 200
    viewer.post("/admin/jobs/job/", {"action": "cancel", "_selected_action": [job.pk]})
    job.refresh_from_db()
    assert job.status == "queued"
    changer = _staff("view_job", "change_job")
    changer.post("/admin/jobs/job/", {"action": "cancel", "_selected_action": [job.pk]})
    job.refresh_from_db()
    assert job.status == "cancelled"


def test_the_admin_never_shows_a_webhook_secret(job):
    viewer = _staff("view_job", "change_job")
    page = viewer.get(f"/admin/jobs/job/{quote(job.pk)}/change/")
    assert page.status_code == 200, (page.status_code, page.get("Location"), Job.objects.count())
    html = page.content.decode()
    assert SECRET not in html
    assert "http://127.0.0.1:9/hook" in html  # the rest of the webhook is shown


def test_operator_pages_need_view_and_terminating_needs_change(seeded):
    _, account = api_for("pro")
    session = session_create(account=account, spec=SessionSpec())
    nobody = _staff()
    assert nobody.get("/admin/ops/").status_code == 403
    viewer = _staff("view_browsersession")
    assert viewer.get("/admin/ops/").status_code == 200
    page = viewer.get(f"/admin/ops/sessions/{session.pk}/")
    assert page.status_code == 200 and b"data-terminate" not in page.content
    refused = viewer.post(f"/admin/ops/sessions/{session.pk}/terminate/")
    assert refused.status_code == 403
    assert BrowserSession.objects.get(pk=session.pk).ended_at is None
    operator = _staff("view_browsersession", "change_browsersession")
    assert b"data-terminate" in operator.get(f"/admin/ops/sessions/{session.pk}/").content
    assert operator.post(f"/admin/ops/sessions/{session.pk}/terminate/").status_code == 302
    assert BrowserSession.objects.get(pk=session.pk).ended_at is not None
