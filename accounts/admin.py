from __future__ import annotations

import secrets
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse

from accounts.models import Account, ApiKey, Membership, Plan
from accounts.services import api_key_revoke
from billing.ledger import ledger_post
from billing.models import LedgerEntry
from billing.selectors import balances_mismatched
from project.exceptions import InsufficientCredits


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin[Plan]):
    list_display = [
        "name",
        "max_concurrent_sessions",
        "max_lifetime_seconds",
        "requests_per_minute",
        "max_waiting_requests",
        "max_job_urls",
        "max_running_jobs",
        "max_queued_jobs",
        "saved_state_max_bytes",
        "max_saved_states",
        "saved_state_retention_days",
        "recording_retention_days",
        "recording_storage_bytes",
    ]


class ApiKeyInline(admin.TabularInline[ApiKey, Account]):
    model = ApiKey
    extra = 0
    fields = ("prefix", "name", "created_at", "last_used_at", "revoked_at")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # keys are issued with `manage.py create_api_key`, which shows the raw key once


class MembershipInline(admin.TabularInline[Membership, Account]):
    """Console users of the account (docs/console.md); add them with `manage.py add_member`."""

    model = Membership
    extra = 0
    fields = ("user", "role", "created_at")
    readonly_fields = ("user", "created_at")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # add_member creates the user and sends the invitation


class CreditsForm(forms.Form):
    amount = forms.IntegerField(help_text="Credits to add (top-up: positive; adjustment: may be negative).")
    reason = forms.CharField(max_length=255)


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin[Account]):
    list_display = ["name", "plan", "balance_credits", "is_active", "created_at"]
    list_filter = ["plan", "is_active"]
    search_fields = ["name"]
    list_select_related = ["plan", "balance"]
    inlines = [ApiKeyInline, MembershipInline]
    actions = ["check_balances"]
    change_form_template = "admin/accounts/account/change_form.html"

    @admin.display(description="balance")
    def balance_credits(self, account: Account) -> int | None:
        balance = getattr(account, "balance", None)
        return balance.credits if balance else None

    def get_urls(self) -> list[Any]:
        return [
            path(
                "<int:account_id>/credits/<str:kind>/",
                self.admin_site.admin_view(self.credits_view),
                name="accounts_account_credits",
            ),
            *super().get_urls(),
        ]

    def credits_view(self, request: HttpRequest, account_id: int, kind: str) -> HttpResponse:
        """Top-ups and adjustments are ledger lines; the balance is never edited directly.

        Only operators holding `billing.add_credits` may use it: credits are money.
        """
        if not request.user.has_perm("billing.add_credits"):
            raise PermissionDenied
        account = get_object_or_404(Account, pk=account_id)
        if kind not in (LedgerEntry.Kind.TOPUP, LedgerEntry.Kind.ADJUSTMENT):
            return HttpResponseRedirect(reverse("admin:accounts_account_change", args=[account_id]))
        form = CreditsForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            amount = form.cleaned_data["amount"]
            if kind == LedgerEntry.Kind.TOPUP and amount <= 0:
                form.add_error("amount", "A top-up adds credits: give a positive amount.")
            else:
                try:
                    # The form's token makes a double submit post once.
                    ledger_post(
                        account_id=account.pk,
                        amount=amount,
                        kind=kind,
                        idempotency_key=f"{kind}:admin:{request.POST.get('form_token')}",
                        reason=f"{form.cleaned_data['reason']} (by {request.user})",
                    )
                except InsufficientCredits as exc:
                    form.add_error("amount", exc.detail)
                else:
                    self.message_user(request, f"{kind}: {amount:+d} credits for {account}.")
                    return HttpResponseRedirect(reverse("admin:accounts_account_change", args=[account_id]))
        context = {
            **self.admin_site.each_context(request),
            "title": f"{'Top up' if kind == LedgerEntry.Kind.TOPUP else 'Adjust'} credits of {account}",
            "form": form,
            "account": account,
            "form_token": request.POST.get("form_token") or secrets.token_hex(16),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/accounts/account/credits.html", context)

    @admin.action(description="Check that balances equal their ledger sums")
    def check_balances(self, request: HttpRequest, queryset: QuerySet[Account]) -> None:
        wrong = [
            row
            for row in balances_mismatched()
            if row["account_id"] in set(queryset.values_list("pk", flat=True))
        ]
        if wrong:
            for row in wrong:
                self.message_user(
                    request,
                    f"{row['name']}: balance {row['balance']} != ledger sum {row['ledger_sum']}",
                    messages.ERROR,
                )
        else:
            self.message_user(request, f"All {queryset.count()} balances equal their ledger sums.")


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin[ApiKey]):
    list_display = ["prefix", "account", "name", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["prefix", "account__name"]
    readonly_fields = ["prefix", "hashed_key", "account", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Revoke selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for key in queryset:
            api_key_revoke(api_key=key)
        self.message_user(request, f"Revoked {queryset.count()} keys.")


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin[Membership]):
    list_display = ["user", "account", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__email", "account__name"]
    list_select_related = ["user", "account"]
    readonly_fields = ["user", "account", "created_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # `manage.py add_member` (or an owner in the console) invites with an email
