"""Sign in, sign out, password reset and invitations: Django's auth views with console pages.

django-axes counts failed sign-ins (settings: AXES_*); the console's own per-address rate limit
applies to every one of these pages as well.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponseBase
from django.urls import reverse_lazy

from accounts.lockout import client_ip
from console.access import console_rate_limited, rate_limited_response


def ip_rate_limited(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        retry_after = console_rate_limited(request, f"ip:{client_ip(request)}")
        if retry_after is not None:
            return rate_limited_response(request, retry_after)
        return view(request, *args, **kwargs)

    return wrapped


login = ip_rate_limited(
    auth_views.LoginView.as_view(template_name="console/auth/login.html", redirect_authenticated_user=True)
)
logout = ip_rate_limited(auth_views.LogoutView.as_view())
password_reset = ip_rate_limited(
    auth_views.PasswordResetView.as_view(
        template_name="console/auth/password_reset_form.html",
        email_template_name="console/auth/password_reset_email.txt",
        subject_template_name="console/auth/password_reset_subject.txt",
        success_url=reverse_lazy("console:password-reset-done"),
    )
)
password_reset_done = ip_rate_limited(
    auth_views.PasswordResetDoneView.as_view(template_name="console/auth/password_reset_done.html")
)
password_reset_confirm = ip_rate_limited(
    auth_views.PasswordResetConfirmView.as_view(
        template_name="console/auth/password_reset_confirm.html",
        success_url=reverse_lazy("console:password-reset-complete"),
    )
)
password_reset_complete = ip_rate_limited(
    auth_views.PasswordResetCompleteView.as_view(template_name="console/auth/password_reset_complete.html")
)
# An invitation is a password reset with its own words: the new member chooses a password.
invite_accept = ip_rate_limited(
    auth_views.PasswordResetConfirmView.as_view(
        template_name="console/auth/invite_accept.html",
        success_url=reverse_lazy("console:password-reset-complete"),
        post_reset_login=False,
    )
)
