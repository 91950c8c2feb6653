"""Dashboard pages, mounted under /admin/ops/ and wrapped by the admin site (staff only, CSRF)."""

from django.contrib import admin
from django.urls import path

from ops import views

app_name = "ops"

urlpatterns = [
    path("", admin.site.admin_view(views.dashboard), name="dashboard"),
    path("sessions/<str:session_id>/", admin.site.admin_view(views.session_detail), name="session"),
    path(
        "sessions/<str:session_id>/terminate/",
        admin.site.admin_view(views.session_terminate_view),
        name="session-terminate",
    ),
    path("accounts/<int:account_id>/", admin.site.admin_view(views.account_detail), name="account"),
]
