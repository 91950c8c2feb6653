"""Invitation emails: a new member sets their password through a one-time link.

The link is Django's password-reset token (default_token_generator): it works once (setting the
password changes the hash it signs), for PASSWORD_RESET_TIMEOUT (3 days by default).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from accounts.models import Membership


def invitation_link(*, user: User) -> str:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    path = reverse("console:invite-accept", kwargs={"uidb64": uid, "token": token})
    return f"{settings.CONSOLE_BASE_URL}{path}"


def invitation_send(*, membership: Membership) -> str:
    """Email the member a link to set their password and sign in; returns the link."""
    user = membership.user
    link = invitation_link(user=user)
    context = {"account": membership.account, "role": membership.role, "link": link, "email": user.email}
    subject = render_to_string("console/auth/invite_subject.txt", context).strip()
    body = render_to_string("console/auth/invite_email.txt", context)
    send_mail(subject, body, None, [user.email])
    return link
