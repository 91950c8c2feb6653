from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from jobs.models import Job, JobBrowser, JobItem
from jobs.services import job_cancel
from project.exceptions import Conflict


class _ReadOnly(admin.ModelAdmin[Any]):
    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Job)
class JobAdmin(_ReadOnly):
    list_display = [
        "id",
        "account",
        "status",
        "ended_reason",
        "total",
        "credits_used",
        "credits_held",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "ended_reason"]
    search_fields = ["id", "account__name"]
    list_select_related = ["account"]
    date_hierarchy = "created_at"
    actions = ["cancel"]
    # The webhook's signing secret is the tenant's: shown without it (webhook_shown).
    # Its proxy configuration is sealed and holds the tenant's proxy credentials: not shown at all
    # (the public echo is in `spec`).
    exclude = ["webhook", "proxy_config"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        hidden = {"webhook", "proxy_config"}
        return [name for name in super().get_readonly_fields(request, obj) if name not in hidden] + [
            "webhook_shown"
        ]

    @admin.display(description="webhook")
    def webhook_shown(self, job: Job) -> str:
        if not job.webhook:
            return "-"
        shown = {key: value for key, value in job.webhook.items() if key != "secret"}
        if job.webhook.get("secret"):
            shown["secret"] = "(set, not shown)"  # noqa: S105 (a label, not a password)
        return json.dumps(shown)

    # Acting on a tenant's job takes the change permission; view-only staff only look.
    @admin.action(description="Cancel the selected jobs (results so far stay)", permissions=["change"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        cancelled = 0
        for job in queryset:
            try:
                job_cancel(job=job)
                cancelled += 1
            except Conflict:
                continue
        self.message_user(request, f"{cancelled} jobs cancelling.", messages.SUCCESS)


@admin.register(JobItem)
class JobItemAdmin(_ReadOnly):
    list_display = ["id", "job", "seq", "url", "status", "http_status", "attempts", "credits", "error_code"]
    list_filter = ["status", "error_code"]
    search_fields = ["job__id", "url", "key"]
    # Items are many: no count of the whole table on every page.
    show_full_result_count = False


@admin.register(JobBrowser)
class JobBrowserAdmin(_ReadOnly):
    list_display = [
        "id",
        "job",
        "is_live",
        "pages_done",
        "host",
        "created_at",
        "ended_at",
        "lease_expires_at",
    ]
    list_filter = ["is_live"]
    search_fields = ["id", "job__id"]
