"""The Billing page: the plan and its limits, every price as the accept charges it, the balance
and the ledger (paged, CSV), the low-balance alert, and adding credits (billing/payments.py)."""

from __future__ import annotations

import csv
from collections.abc import Iterator

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.models import Membership
from billing.alerts import low_threshold_get, low_threshold_set
from billing.models import LedgerEntry
from billing.payments import CREDITS_STEP, PaymentUnavailable, credits_check, payment_provider, price_of
from billing.selectors import balance_of
from console.access import member_view, owner_view, render_page
from console.billing_selectors import ledger_of, plan_limits, prices
from project.exceptions import InvalidInput

LEDGER_PAGE_SIZE = 50
TOPUP_CHOICES = (10_000, 50_000, 100_000, 500_000)


def _page(request: HttpRequest, member: Membership, *, status: int = 200, **extra: object) -> HttpResponse:
    account = member.account
    ledger = Paginator(ledger_of(account=account), LEDGER_PAGE_SIZE)
    page = ledger.get_page(request.GET.get("page"))
    provider = payment_provider()
    return render_page(
        request,
        member,
        "console/billing.html",
        nav="billing",
        http_status=status,
        balance=balance_of(account_id=account.pk),
        plan=account.plan,
        limits=plan_limits(account=account),
        prices=prices(),
        ledger_page=page,
        alert=low_threshold_get(account_id=account.pk),
        provider=provider,
        topups=[(credits, price_of(credits) / 100) for credits in TOPUP_CHOICES],
        currency=settings.STRIPE_CURRENCY.upper(),
        credits_step=CREDITS_STEP,
        billing_contact=settings.BILLING_CONTACT,
        paid=request.GET.get("paid") == "1",
        **extra,
    )


@member_view
def billing(request: HttpRequest, member: Membership) -> HttpResponse:
    return _page(request, member)


LEDGER_CSV_PAGE = 2000  # ledger lines a query of the CSV reads


def _ledger_pages(member: Membership) -> Iterator[LedgerEntry]:
    """The account's ledger, newest first, read LEDGER_CSV_PAGE lines at a time by keyset
    (created_at, id): each page is its own query, so the stream can be advanced by any web thread
    (project/asgi.py), unlike a server-side cursor, which lives on one thread's connection."""
    entries = ledger_of(account=member.account)
    size = LEDGER_CSV_PAGE
    page = list(entries[:size])
    while page:
        yield from page
        last = page[-1]
        page = list(
            entries.filter(Q(created_at__lt=last.created_at) | Q(created_at=last.created_at, id__lt=last.pk))[
                :size
            ]
        )


def _csv_rows(member: Membership) -> Iterator[list[object]]:
    yield [
        "id",
        "created_at",
        "kind",
        "amount",
        "balance_after",
        "reason",
        "session_id",
        "action_id",
        "api_key",
    ]
    for entry in _ledger_pages(member):
        yield [
            entry.pk,
            entry.created_at.isoformat(),
            entry.kind,
            entry.amount,
            entry.balance_after,
            entry.reason,
            entry.session_id or "",
            entry.action.public_id if entry.action else "",
            entry.api_key.prefix if entry.api_key else "",
        ]


class _Echo:
    def write(self, value: str) -> str:
        return value


@member_view
def ledger_csv(request: HttpRequest, member: Membership) -> StreamingHttpResponse:
    """The whole ledger as CSV, streamed (the same lines as /v1/ledger)."""
    writer = csv.writer(_Echo())
    response = StreamingHttpResponse(
        (writer.writerow(row) for row in _csv_rows(member)), content_type="text/csv"
    )
    response["Content-Disposition"] = f'attachment; filename="ledger-account-{member.account.pk}.csv"'
    # Streamed: an account's ledger can be long.
    return response


@require_POST
@owner_view
def checkout(request: HttpRequest, member: Membership) -> HttpResponse:
    """Start a Stripe Checkout payment and send the owner there (303)."""
    provider = payment_provider()
    if provider is None:
        return _page(request, member, status=400, topup_error="No payment provider is set up.")
    try:
        credits = credits_check(int(request.POST.get("credits", "0")))
    except (ValueError, InvalidInput):
        return _page(
            request, member, status=400, topup_error=f"Choose an amount in multiples of {CREDITS_STEP:,}."
        )
    base = request.build_absolute_uri(reverse("console:billing"))
    try:
        session = provider.checkout_create(
            account_id=member.account.pk,
            credits=credits,
            success_url=base + "?paid=1",
            cancel_url=base,
            email=member.user.email,
        )
    except PaymentUnavailable as exc:
        return _page(request, member, status=503, topup_error=exc.detail)
    return HttpResponseRedirect(session.url, status=303)


@require_POST
@owner_view
def alert_set(request: HttpRequest, member: Membership) -> HttpResponse:
    mode = request.POST.get("mode")
    raw = request.POST.get("value", "").strip()
    try:
        value = int(raw)
        if mode == "percent":
            low_threshold_set(account_id=member.account.pk, percent=value)
        elif mode == "credits":
            low_threshold_set(account_id=member.account.pk, credits=value)
        else:
            raise InvalidInput("Choose credits or percent.")
    except (ValueError, InvalidInput) as exc:
        detail = exc.detail if isinstance(exc, InvalidInput) else "Give a whole number."
        return _page(request, member, status=400, alert_error=detail)
    messages.success(request, "The low-balance alert is saved.")
    return HttpResponseRedirect(reverse("console:billing"))
