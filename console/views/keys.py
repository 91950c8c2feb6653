"""The API keys page: create a named key (shown once), list with prefix and last use, revoke,
and a monthly spend cap per key. Members see the list; owners change it."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.models import ApiKey, Membership
from accounts.services import api_key_create, api_key_revoke
from billing.spend_caps import MAX_CAP, key_spend_cap_set
from console.access import member_view, owner_view, render_page
from console.billing_selectors import api_keys_of


def _page(request: HttpRequest, member: Membership, *, status: int = 200, **extra: object) -> HttpResponse:
    return render_page(
        request,
        member,
        "console/keys.html",
        nav="keys",
        http_status=status,
        keys=api_keys_of(account=member.account),
        max_cap=MAX_CAP,
        **extra,
    )


def _key_of(member: Membership, key_id: int) -> ApiKey:
    key = ApiKey.objects.filter(pk=key_id, account=member.account).first()
    if key is None:
        raise Http404
    return key


@member_view
def keys(request: HttpRequest, member: Membership) -> HttpResponse:
    return _page(request, member)


@require_POST
@owner_view
def key_create(request: HttpRequest, member: Membership) -> HttpResponse:
    name = request.POST.get("name", "").strip()
    if not name or len(name) > 100:
        return _page(request, member, status=400, create_error="Give the key a name (up to 100 characters).")
    key, raw_key = api_key_create(account=member.account, name=name)
    # Rendered in this answer only (no redirect, never stored): the one time the key is shown.
    return _page(request, member, status=201, new_key=key, raw_key=raw_key)


@require_POST
@owner_view
def key_revoke(request: HttpRequest, member: Membership, key_id: int) -> HttpResponse:
    key = _key_of(member, key_id)
    api_key_revoke(api_key=key)
    messages.success(
        request, f"Key {key.prefix}… ({key.name or 'unnamed'}) is revoked: the API refuses it now."
    )
    return HttpResponseRedirect(reverse("console:keys"))


@require_POST
@owner_view
def key_cap(request: HttpRequest, member: Membership, key_id: int) -> HttpResponse:
    key = _key_of(member, key_id)
    raw = request.POST.get("cap", "").strip().replace(",", "")
    if raw == "":
        cap = None
    elif raw.isdigit() and int(raw) <= MAX_CAP:
        cap = int(raw)
    else:
        return _page(
            request, member, status=400, cap_error=f"A cap is a whole number of credits up to {MAX_CAP}."
        )
    spend = key_spend_cap_set(account_id=member.account.pk, api_key_id=key.pk, cap=cap)
    if cap is None:
        messages.success(request, f"Key {key.prefix}… has no spend cap now.")
    else:
        messages.success(
            request, f"Key {key.prefix}… may spend {cap} credits a month; it spent {spend.spent} this month."
        )
    return HttpResponseRedirect(reverse("console:keys"))
