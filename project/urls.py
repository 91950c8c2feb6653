from django.contrib import admin
from django.urls import include, path
from django.views.generic.base import RedirectView

from billing import payment_views
from console import urls as console_urls
from console.views.favicon import favicon
from jobs.api import urls as job_urls
from jobs.api import views as job_views
from ops import metrics, probes
from ops import urls as ops_urls
from project.openapi import DocsView, SchemaJsonView, SchemaYamlView
from reports import api as reports_api
from sessions.api import action_views
from sessions.api import urls as computer_urls
from webhooks.api import urls as webhook_urls

handler400 = "project.exceptions.json_400"
handler403 = "project.exceptions.json_403"
handler404 = "project.exceptions.json_404"
handler500 = "project.exceptions.json_500"

urlpatterns = [
    # Probes and metrics: no API key, no lockout (ops/probes.py, ops/metrics.py).
    path("healthz", probes.healthz, name="healthz"),
    path("readyz", probes.readyz, name="readyz"),
    path("metrics", metrics.metrics, name="metrics"),
    path("favicon.ico", favicon, name="favicon"),
    # The customer console (console/, docs/console.md); its pages end in a slash, as the admin's.
    path("console", RedirectView.as_view(pattern_name="console:overview"), name="console-root"),
    path("console/", include(console_urls)),
    path("admin/ops/", include(ops_urls)),
    path("admin/", admin.site.urls),
    path("v1/openapi.json", SchemaJsonView.as_view(), name="openapi-json"),
    path("v1/openapi.yaml", SchemaYamlView.as_view(), name="openapi-yaml"),
    path("v1/docs", DocsView.as_view(url_name="openapi-json"), name="docs"),
    path("v1/screenshots/<str:token>.png", action_views.ScreenshotView.as_view(), name="screenshot"),
    path(
        "v1/",
        include((computer_urls.v1_only_urlpatterns + computer_urls.urlpatterns, "computers"), namespace="v1"),
    ),
    path("v1/", include((reports_api.urlpatterns, "billing"), namespace="billing")),
    path("v1/job-screenshots/<str:token>.png", job_views.JobScreenshotView.as_view(), name="job-screenshot"),
    path("v1/", include((job_urls.urlpatterns, "jobs"), namespace="jobs")),
    path("v1/", include((webhook_urls.urlpatterns, "webhooks"), namespace="webhooks")),
    path("", include((payment_views.urlpatterns, "payments"), namespace="payments")),
    path("", include((computer_urls.urlpatterns, "computers"), namespace="root")),
]
