"""People: the account's members. Owners invite (an email with a one-time link to choose a
password), change roles and remove members; every member sees the list. A member of several
accounts switches between them here (the choice is kept in their sign-in session)."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.models import Membership
from accounts.selectors import memberships_of
from accounts.services import member_add
from console.access import ACCOUNT_SESSION_KEY, member_view, owner_view, render_page
from console.invitations import invitation_send


class InviteForm(forms.Form):
    email = forms.EmailField(max_length=254)
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.MEMBER)


@member_view
def member_list(request: HttpRequest, member: Membership) -> HttpResponse:
    members = (
        Membership.objects.filter(account=member.account)
        .select_related("user")
        .order_by("role", "user__email")
    )
    return render_page(
        request,
        member,
        "console/members.html",
        nav="members",
        members=members,
        form=InviteForm(),
        memberships=memberships_of(user_id=member.user_id),
    )


@require_POST
@owner_view
def member_invite(request: HttpRequest, member: Membership) -> HttpResponse:
    form = InviteForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give an email address and a role.")
        return HttpResponseRedirect(reverse("console:members"))
    email, role = form.cleaned_data["email"], form.cleaned_data["role"]
    if Membership.objects.filter(account=member.account, user__username=email.strip().lower()).exists():
        messages.error(request, f"{email} is already a member; change their role in the list.")
        return HttpResponseRedirect(reverse("console:members"))
    membership, created = member_add(account=member.account, email=email, role=role)
    if created or not membership.user.has_usable_password():
        invitation_send(membership=membership)
        messages.success(request, f"Invitation sent to {membership.user.email}.")
    else:
        messages.success(request, f"{membership.user.email} can now sign in to this account.")
    return HttpResponseRedirect(reverse("console:members"))


def _other_member(member: Membership, membership_id: int) -> Membership:
    other = Membership.objects.filter(pk=membership_id, account=member.account).select_related("user").first()
    if other is None:
        raise Http404
    return other


def _last_owner(member: Membership, target: Membership) -> bool:
    return (
        target.role == Membership.Role.OWNER
        and Membership.objects.filter(account=member.account, role=Membership.Role.OWNER).count() <= 1
    )


@require_POST
@owner_view
def member_role(request: HttpRequest, member: Membership, membership_id: int) -> HttpResponse:
    role = request.POST.get("role", "")
    with transaction.atomic():
        # Locked: two owners demoting each other at once must not leave the account without one.
        list(Membership.objects.select_for_update().filter(account=member.account).order_by("pk"))
        target = _other_member(member, membership_id)
        if role not in Membership.Role.values:
            messages.error(request, "Unknown role.")
        elif role != target.role and _last_owner(member, target):
            messages.error(request, "An account keeps at least one owner.")
        else:
            Membership.objects.filter(pk=target.pk).update(role=role)
            messages.success(request, f"{target.user.email} is now {role}.")
    return HttpResponseRedirect(reverse("console:members"))


@require_POST
@owner_view
def member_remove(request: HttpRequest, member: Membership, membership_id: int) -> HttpResponse:
    with transaction.atomic():
        list(Membership.objects.select_for_update().filter(account=member.account).order_by("pk"))
        target = _other_member(member, membership_id)
        if _last_owner(member, target):
            messages.error(request, "An account keeps at least one owner.")
        else:
            target.delete()
            messages.success(request, f"{target.user.email} no longer has access to this account.")
    return HttpResponseRedirect(reverse("console:members"))


@require_POST
@member_view
def account_switch(request: HttpRequest, member: Membership) -> HttpResponse:
    """Show another of the user's accounts (404 for an account they are not a member of)."""
    try:
        account_id = int(request.POST.get("account", ""))
    except ValueError:
        raise Http404 from None
    if not any(m.account_id == account_id for m in memberships_of(user_id=member.user_id)):
        raise Http404
    request.session[ACCOUNT_SESSION_KEY] = account_id
    return HttpResponseRedirect(reverse("console:overview"))
