from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from project.exceptions import ApplicationError
from sessions.live_viewer import live_viewer_token_create
from sessions.models import (
    LIVE_STATUSES,
    Action,
    BrowserSession,
    EndedReason,
    RecordingStatus,
    SavedState,
    SessionRecording,
    WarmBrowser,
    WorkerHost,
)
from sessions.recordings import recording_replay_token
from sessions.saved_state import saved_state_delete
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
        "browser",
        "host",
        "billed_minutes",
    ]
    list_filter = ["status", "ended_reason", "backend", "browser"]
    search_fields = ["id", "account__name", "webdriver_session_id"]
    list_select_related = ["account"]
    date_hierarchy = "created_at"
    actions = ["terminate"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["live_view", "recording_replay", *(f.name for f in BrowserSession._meta.fields)]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Live view")
    def live_view(self, obj: BrowserSession) -> str:
        """A read-only live viewer of a live session: an iframe of a freshly signed viewer link
        (same origin; the viewer page allows framing by this origin only, and its stream counts
        against the session's account's open streams while the page is open)."""
        if obj.backend != "local":
            return "Live view: local backend only."
        try:
            token, expires_at = live_viewer_token_create(session=obj, interactive=False)
        except ApplicationError as exc:  # starting (409) or ended (410)
            return str(exc.detail)
        return format_html(
            '<iframe src="{}" title="Live view of {}" width="1040" height="820" '
            'style="border:1px solid #ccc" referrerpolicy="no-referrer"></iframe>'
            "<br>The link expires at {}.",
            reverse("v1:live-viewer", args=[token]),
            obj.pk,
            expires_at.isoformat(timespec="seconds"),
        )

    @admin.display(description="Recording")
    def recording_replay(self, obj: BrowserSession) -> str:
        recording = SessionRecording.objects.filter(session=obj).first()
        if recording is None:
            return "Not recorded."
        if recording.status != RecordingStatus.READY:
            return f"{recording.status} {recording.failure_reason}".strip()
        token, _ = recording_replay_token(recording=recording)
        return format_html(
            '<a href="{}" target="_blank" rel="noopener noreferrer">Replay</a> ({} frames, {} s)',
            reverse("v1:replay", args=[token]),
            recording.frame_count,
            round(recording.duration_ms / 1000, 1),
        )

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


@admin.register(WorkerHost)
class WorkerHostAdmin(admin.ModelAdmin[WorkerHost]):
    """The fleet: each host's heartbeat, capacity and warm pool (count and age of the oldest)."""

    list_display = [
        "name",
        "heartbeat_at",
        "capacity",
        "pool_size",
        "pool_size_headless_shell",
        "pool_browsers",
        "live_sessions",
        "started_at",
    ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in WorkerHost._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="pool browsers (ready/all)")
    def pool_browsers(self, obj: WorkerHost) -> str:
        counts = dict(
            WarmBrowser.objects.filter(host=obj.name)
            .values_list("state")
            .annotate(n=Count("pk"))
            .values_list("state", "n")
        )
        return f"{counts.get('ready', 0)}/{sum(counts.values())}"

    @admin.display(description="live sessions")
    def live_sessions(self, obj: WorkerHost) -> int:
        return BrowserSession.objects.filter(host=obj.name, status__in=LIVE_STATUSES).count()


@admin.register(WarmBrowser)
class WarmBrowserAdmin(admin.ModelAdmin[WarmBrowser]):
    """Pool browsers: started, blank, not billed; each is claimed by one create, then deleted."""

    list_display = ["id", "host", "flavour", "state", "created_at", "age_seconds", "browser_pid"]
    list_filter = ["host", "flavour", "state"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in WarmBrowser._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="age (s)")
    def age_seconds(self, obj: WarmBrowser) -> int:
        return int((timezone.now() - obj.created_at).total_seconds())


@admin.register(SavedState)
class SavedStateAdmin(admin.ModelAdmin[SavedState]):
    """Saved browser states: size and use, and delete. Their contents are encrypted and never
    shown here (the blob is not a field of this model)."""

    list_display = [
        "id",
        "account",
        "status",
        "size_bytes",
        "cookie_count",
        "saved_at",
        "last_used_at",
        "expires_at",
    ]
    list_filter = ["status"]
    search_fields = ["id", "account__name"]
    list_select_related = ["account"]
    actions = ["forget"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in SavedState._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: SavedState) -> None:
        saved_state_delete(account=obj.account, environment_id=obj.pk)

    def get_actions(self, request: HttpRequest) -> Any:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # `forget` deletes through the store as well
        return actions

    @admin.action(description="Forget the selected saved states")
    def forget(self, request: HttpRequest, queryset: QuerySet[SavedState]) -> None:
        for state in queryset.select_related("account"):
            saved_state_delete(account=state.account, environment_id=state.pk)
