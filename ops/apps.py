from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Operator tooling at the top layer: dashboard pages in the admin, probes, metrics."""

    name = "ops"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib import admin

        # The stock index with a link to the dashboard above the app list.
        admin.site.index_template = "admin/ops/index.html"
