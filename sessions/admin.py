from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from sessions.models import Action, BrowserSession, EndedReason
from sessions.services import session_terminate


@admin.register(BrowserSession)
class BrowserSessionAdmin(admin.ModelAdmin[BrowserSession]):
    list_display = [
        "id",
        "account",
        "status",
        "ended_reason",
        "created_at",
        "expires_at",
        "last_activity_at",
        "backend",
        "host",
        "billed_minutes",
    ]
    list_filter = ["status", "ended_reason", "backend"]
    search_fields = ["id", "account__name", "webdriver_session_id"]
    list_select_related = ["account"]
    date_hierarchy = "created_at"
    actions = ["terminate"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in BrowserSession._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Terminate selected sessions (ended_reason=admin)")
    def terminate(self, request: HttpRequest, queryset: QuerySet[BrowserSession]) -> None:
        ended = sum(session_terminate(session_id=s.pk, reason=EndedReason.ADMIN) for s in queryset)
        self.message_user(request, f"Terminated {ended} sessions; their browsers are being stopped.")


@admin.register(Action)
class ActionAdmin(admin.ModelAdmin[Action]):
    list_display = ["public_id", "session", "type", "status", "price", "created_at", "duration_ms"]
    list_filter = ["status", "type"]
    search_fields = ["public_id", "session__id"]
    list_select_related = ["session"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in Action._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
