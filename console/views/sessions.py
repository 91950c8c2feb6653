"""Sessions: the account's browser sessions (live or ended), and one session's page: status, why
it ended, what it cost, its timeline of actions with screenshots, and a live viewer link."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.models import Membership
from console.access import member_view, render_filtered_list, render_page
from console.selectors import (
    SESSION_FILTERS,
    console_session,
    console_sessions,
    session_facts,
    session_timeline,
)
from project.exceptions import ApplicationError
from sessions.live_viewer import live_viewer_token_create
from sessions.models import BrowserSession, RecordingStatus, SessionRecording
from sessions.recordings import recording_replay_token


@member_view
def session_list(request: HttpRequest, member: Membership) -> HttpResponse:
    return render_filtered_list(
        request,
        member,
        "console/sessions.html",
        nav="sessions",
        filters=SESSION_FILTERS,
        fetch=lambda status, limit, offset: console_sessions(
            account=member.account, status=status, limit=limit, offset=offset
        ),
    )


@member_view
def session_detail(request: HttpRequest, member: Membership, session_id: str) -> HttpResponse:
    session = console_session(account=member.account, session_id=session_id)
    # ?fragment=1: the facts and the timeline alone, for the page's refresh while it runs.
    template = "console/_session_live.html" if request.GET.get("fragment") else "console/session.html"
    return render_page(
        request,
        member,
        template,
        nav="sessions",
        refresh_seconds=settings.CONSOLE_REFRESH_SECONDS,
        session=session,
        facts=session_facts(session=session),
        timeline=session_timeline(session=session),
        screenshot_minutes=settings.SCREENSHOT_URL_TTL_SECONDS // 60,
        recording=_recording(session),
    )


def _recording(session: BrowserSession) -> dict[str, Any] | None:
    """The session's recording (issue 22) and, once ready, a freshly signed replay link, the one
    GET /v1/computers/{id}/recording gives."""
    recording = SessionRecording.objects.filter(session=session).first()
    if recording is None:
        return None
    replay_url = None
    if recording.status == RecordingStatus.READY:
        token, _ = recording_replay_token(recording=recording)
        replay_url = reverse("v1:replay", args=[token])
    return {"recording": recording, "replay_url": replay_url}


@require_POST
@member_view
def session_live(request: HttpRequest, member: Membership, session_id: str) -> HttpResponse:
    """A view-only live viewer link (as POST /v1/computers/{id}/live), opened at once."""
    session = console_session(account=member.account, session_id=session_id)
    try:
        token, _ = live_viewer_token_create(session=session, interactive=False)
    except ApplicationError as exc:
        messages.error(request, exc.detail)
        return HttpResponseRedirect(reverse("console:session", args=[session.pk]))
    return HttpResponseRedirect(reverse("v1:live-viewer", args=[token]))
