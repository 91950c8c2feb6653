"""Who gets in: sign-in, the member's account, the login limit, CSP, the favicon, add_member."""

from __future__ import annotations

import re
from io import StringIO
from typing import Any

import pytest
from django.core import mail
from django.core.management import call_command
from django.test import Client as PageClient

from accounts.models import Membership
from accounts.selectors import owner_emails
from tests.console.conftest import PASSWORD, Tenant


def test_pages_need_a_signed_in_member(tenant: Tenant) -> None:
    response = PageClient().get("/console/")
    assert response.status_code == 302
    assert response["Location"] == "/console/login/?next=/console/"


def test_sign_in_shows_the_members_account(tenant: Tenant) -> None:
    pages = PageClient()
    response = pages.post("/console/login/", {"username": "owner@acme.test", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/console/"
    page = pages.get("/console/")
    assert page.status_code == 200
    assert b"acme" in page.content and b"10000" in page.content
    assert page["Cache-Control"].startswith("max-age=0") or "no-cache" in page["Cache-Control"]


def test_sign_out_is_a_post_and_ends_the_login(tenant: Tenant) -> None:
    pages = tenant.pages()
    assert pages.get("/console/").status_code == 200
    pages.post("/console/logout/")
    assert pages.get("/console/").status_code == 302


def test_csrf_is_enforced_on_sign_in(tenant: Tenant) -> None:
    pages = PageClient(enforce_csrf_checks=True)
    response = pages.post("/console/login/", {"username": "owner@acme.test", "password": PASSWORD})
    assert response.status_code == 403


def test_a_user_of_no_account_sees_no_console(tenant: Tenant, django_user_model: Any) -> None:
    user = django_user_model.objects.create_user("loner@x.test", "loner@x.test", PASSWORD)
    pages = PageClient()
    pages.force_login(user)
    response = pages.get("/console/")
    assert response.status_code == 403
    assert b"not a member" in response.content


def test_failed_sign_ins_lock_that_user_out_from_that_address(tenant: Tenant, settings: Any) -> None:
    pages = PageClient()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = pages.post("/console/login/", {"username": "owner@acme.test", "password": "wrong"})
        assert response.status_code == 200
    response = pages.post("/console/login/", {"username": "owner@acme.test", "password": "wrong"})
    assert response.status_code == 429
    assert b"Too many failed sign-ins" in response.content
    # Locked out even with the right password...
    response = pages.post("/console/login/", {"username": "owner@acme.test", "password": PASSWORD})
    assert response.status_code == 429
    # ...while another user from the same address (a shared NAT) still signs in.
    response = pages.post("/console/login/", {"username": "member@acme.test", "password": PASSWORD})
    assert response.status_code == 302


def test_console_pages_carry_a_strict_content_security_policy(tenant: Tenant) -> None:
    for path in ("/console/login/", "/console/password-reset/"):
        csp = PageClient().get(path)["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "style-src 'self'" in csp and "unsafe-inline" not in csp
    page = tenant.pages().get("/console/")
    csp = page["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    # No inline script or style in the page itself, which the policy would block.
    html = page.content.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert "<style" not in html and " style=" not in html


@pytest.mark.parametrize("path", ["/favicon.ico"])
def test_favicon_is_served(db: None, path: str) -> None:
    response = PageClient().get(path)
    assert response.status_code == 200 and response["Content-Type"] == "image/x-icon"
    assert response.content[:4] == b"\x00\x00\x01\x00"


def test_add_member_invites_a_new_user_by_email(tenant: Tenant) -> None:
    out = StringIO()
    call_command("add_member", str(tenant.account.pk), "New.Person@Acme.test", "--role", "owner", stdout=out)
    membership = Membership.objects.get(account=tenant.account, user__email="new.person@acme.test")
    assert membership.role == "owner" and not membership.user.has_usable_password()
    assert "new.person@acme.test" in owner_emails(account_id=tenant.account.pk)
    (message,) = mail.outbox
    assert message.to == ["new.person@acme.test"] and "acme" in message.subject
    link = re.search(r"http://\S+/console/invite/\S+/", message.body)
    assert link is not None and link.group(0) in out.getvalue()

    # The link lets them choose a password once, then sign in.
    pages = PageClient()
    path = link.group(0).split("127.0.0.1:8000", 1)[1]
    form = pages.get(path, follow=True)
    assert form.status_code == 200 and b"Choose a password" in form.content
    new_password = "a quite long new password 42"
    done = pages.post(
        form.redirect_chain[-1][0], {"new_password1": new_password, "new_password2": new_password}
    )
    assert done.status_code == 302
    assert (
        pages.post(
            "/console/login/", {"username": "new.person@acme.test", "password": new_password}
        ).status_code
        == 302
    )
    assert pages.get("/console/").status_code == 200
    # Used once: the same link no longer works.
    assert b"no longer valid" in PageClient().get(path, follow=True).content


def test_add_member_with_a_password_sends_nothing(tenant: Tenant) -> None:
    call_command(
        "add_member", "acme", "dev@acme.test", "--password", "another long password 7", stdout=StringIO()
    )
    assert mail.outbox == []
    membership = Membership.objects.get(user__email="dev@acme.test")
    assert membership.role == "member" and membership.user.check_password("another long password 7")


def test_password_reset_mails_a_console_link(tenant: Tenant) -> None:
    response = PageClient().post("/console/password-reset/", {"email": "owner@acme.test"})
    assert response.status_code == 302
    (message,) = mail.outbox
    assert "/console/password-reset/" in message.body


def test_owners_invite_and_manage_members_and_members_cannot(tenant: Tenant, stranger: Tenant) -> None:
    owner = tenant.pages()
    response = owner.post("/console/members/invite/", {"email": "new@acme.test", "role": "member"})
    assert response.status_code == 302
    (message,) = mail.outbox
    assert message.to == ["new@acme.test"] and "/console/invite/" in message.body
    new = Membership.objects.get(account=tenant.account, user__email="new@acme.test")
    # A plain member sees the list but may not change it: those addresses do not exist for them.
    member = tenant.pages(as_owner=False)
    assert b"new@acme.test" in member.get("/console/members/").content
    assert (
        member.post("/console/members/invite/", {"email": "x@acme.test", "role": "owner"}).status_code == 404
    )
    assert member.post(f"/console/members/{new.pk}/role/", {"role": "owner"}).status_code == 404
    assert member.post(f"/console/members/{new.pk}/remove/").status_code == 404
    assert not Membership.objects.filter(user__email="x@acme.test").exists()
    # The owner promotes and removes; another account's membership is 404.
    owner.post(f"/console/members/{new.pk}/role/", {"role": "owner"})
    assert Membership.objects.get(pk=new.pk).role == "owner"
    owner.post(f"/console/members/{new.pk}/remove/")
    assert not Membership.objects.filter(pk=new.pk).exists()
    assert owner.post(f"/console/members/{stranger.owner.pk}/remove/").status_code == 404
    assert owner.post(f"/console/members/{stranger.owner.pk}/role/", {"role": "member"}).status_code == 404
    assert Membership.objects.filter(pk=stranger.owner.pk, role="owner").exists()


def test_the_last_owner_stays(tenant: Tenant) -> None:
    owner = tenant.pages()
    owner.post(f"/console/members/{tenant.owner.pk}/role/", {"role": "member"})
    owner.post(f"/console/members/{tenant.owner.pk}/remove/")
    assert Membership.objects.get(pk=tenant.owner.pk).role == "owner"


def test_a_member_of_two_accounts_switches_between_them(tenant: Tenant, stranger: Tenant) -> None:
    from accounts.services import member_add

    member_add(account=stranger.account, email="owner@acme.test", role="member")
    pages = tenant.pages()
    assert b"globex" not in pages.get("/console/").content
    assert pages.post("/console/account/", {"account": str(stranger.account.pk)}).status_code == 302
    html = pages.get("/console/").content.decode()
    assert f'title="Account {stranger.account.pk}">globex<' in html
    # Not a member of this one: 404, and the choice stays.
    assert pages.post("/console/account/", {"account": "999999"}).status_code == 404
    assert b"globex" in pages.get("/console/").content


def test_sign_in_and_its_limit_through_the_asgi_server(
    live_server: Any, make_tenant: Any, settings: Any
) -> None:
    """The same rules as `bin/dev web` serves them (the test client above skips the ASGI handler)."""
    import requests

    make_tenant("initech")

    def attempt(password: str, username: str = "owner@initech.test") -> requests.Response:
        http = requests.Session()
        form = http.get(f"{live_server.url}/console/login/", timeout=30)
        assert "script-src 'self'" in form.headers["Content-Security-Policy"]
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        assert token is not None
        return http.post(
            f"{live_server.url}/console/login/",
            data={"username": username, "password": password, "csrfmiddlewaretoken": token[1]},
            headers={"Referer": f"{live_server.url}/console/login/"},
            allow_redirects=False,
            timeout=30,
        )

    assert attempt(PASSWORD).status_code == 302
    codes = [attempt("wrong").status_code for _ in range(settings.AXES_FAILURE_LIMIT)]
    assert codes == [200] * (settings.AXES_FAILURE_LIMIT - 1) + [429]
    assert attempt(PASSWORD).status_code == 429
    assert attempt(PASSWORD, username="member@initech.test").status_code == 302
