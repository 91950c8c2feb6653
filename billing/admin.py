from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from billing.models import Balance, KeySpend, LedgerEntry, Price, TopupPayment


class ReadOnlyAdmin(admin.ModelAdmin[Any]):
    """Money is moved by ledger_post only: the admin shows, it never edits."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "account", "kind", "amount", "balance_after", "reason", "session", "action"]
    list_filter = ["kind"]
    search_fields = ["account__name", "idempotency_key", "session__id"]
    list_select_related = ["account", "action"]
    date_hierarchy = "created_at"


@admin.register(Balance)
class BalanceAdmin(ReadOnlyAdmin):
    list_display = ["account", "credits", "low_threshold", "updated_at"]
    search_fields = ["account__name"]
    # The one editable field is no money: the balance below which `credits.low` is sent.
    fields = ["account", "credits", "low_threshold", "updated_at"]
    readonly_fields = ["account", "credits", "updated_at"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("billing.change_balance")


@admin.register(Price)
class PriceAdmin(admin.ModelAdmin[Price]):
    list_display = ["item", "credits", "description", "updated_at"]
    list_editable = ["credits"]
    search_fields = ["item"]


@admin.register(TopupPayment)
class TopupPaymentAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "account", "provider", "credits", "provider_reference", "provider_event_id"]
    search_fields = ["account__name", "provider_reference", "provider_event_id"]
    list_select_related = ["account"]


@admin.register(KeySpend)
class KeySpendAdmin(ReadOnlyAdmin):
    """Caps are set by the account's owners in the console; shown here for support."""

    list_display = ["api_key", "monthly_cap", "period_start", "spent", "updated_at"]
    list_select_related = ["api_key", "api_key__account"]
