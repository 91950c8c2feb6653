"""Live viewer links: a signed, short-lived URL that shows a session's screencast without an
API key (docs/streams.md, "Live viewer").

The token is signed with SECRET_KEY (django.core.signing) and names the session, its account,
whether the viewer may act, and when it expires; nothing is stored. It stops working at its
expiry and as soon as the session ends (checked on every use). It sits in the URL path, so the
access logs cut it (project/access_log.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.utils import timezone

from accounts.models import Account
from project.exceptions import NotFound
from sessions.models import BrowserSession
from sessions.services import session_require_active

_SALT = "browserfleet.sessions.live-viewer"
# Actions a viewer may send: what a person does with a mouse and a keyboard.
VIEWER_ACTIONS = ("click", "double_click", "scroll", "type", "hotkey")


@dataclass(frozen=True)
class LiveViewer:
    session: BrowserSession
    interactive: bool
    expires_at: datetime


def live_viewer_token_create(*, session: BrowserSession, interactive: bool) -> tuple[str, datetime]:
    """A viewer token for a live session, valid LIVE_VIEWER_TTL_SECONDS (never past the
    session's own lifetime)."""
    session = session_require_active(session=session)
    expires_at = min(timezone.now() + timedelta(seconds=settings.LIVE_VIEWER_TTL_SECONDS), session.expires_at)
    payload = {"s": session.pk, "a": session.account_id, "i": interactive, "e": int(expires_at.timestamp())}
    return signing.dumps(payload, salt=_SALT), expires_at


def _gone() -> NotFound:
    return NotFound("This live view does not exist or its link has expired.", code="live_view_not_found")


def live_viewer_resolve(token: str) -> LiveViewer:
    """The viewer a token grants: 404 if forged or expired, 410 once the session ended."""
    try:
        payload: dict[str, Any] = signing.loads(token, salt=_SALT)
    except signing.BadSignature:
        raise _gone() from None
    expires_at = datetime.fromtimestamp(int(payload["e"]), tz=timezone.get_current_timezone())
    if expires_at <= timezone.now():
        raise _gone()
    session = (
        BrowserSession.objects.filter(pk=payload["s"], account_id=payload["a"])
        .select_related("account__plan")
        .first()
    )
    if session is None:
        raise _gone()
    session = session_require_active(session=session)  # 410 once it ended
    return LiveViewer(session=session, interactive=bool(payload["i"]), expires_at=expires_at)


def live_viewer_account(viewer: LiveViewer) -> Account:
    return viewer.session.account
