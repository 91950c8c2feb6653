from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

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


# What a tenant typed may be a password: operators see its length, not its text.
_TYPED = {"type": "text", "point_and_type": "text", "step": "value"}


def masked_params(action_type: str, params: Any) -> Any:
    if not isinstance(params, dict):
        return params
    if action_type == "batch" and isinstance(params.get("actions"), list):
        steps = [
            masked_params(str(s.get("type", "")), s) if isinstance(s, dict) else s for s in params["actions"]
        ]
        return {**params, "actions": steps}
    field = _TYPED.get(action_type)
    if field is None or not isinstance(params.get(field), str):
        return params
    return {**params, field: f"<hidden: {len(params[field])} characters>"}


@admin.register(Action)
class ActionAdmin(admin.ModelAdmin[Action]):
    list_display = ["public_id", "session", "type", "status", "price", "created_at", "duration_ms"]
    list_filter = ["status", "type"]
    search_fields = ["public_id", "session__id"]
    list_select_related = ["session"]
    exclude = ["params"]  # shown masked, as params_shown

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name if f.name != "params" else "params_shown" for f in Action._meta.fields]

    @admin.display(description="params")
    def params_shown(self, action: Action) -> str:
        return format_html("<pre>{}</pre>", json.dumps(masked_params(action.type, action.params), indent=2))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
