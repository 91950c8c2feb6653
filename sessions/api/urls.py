"""The Computer API routes. Mounted at /v1/ and at the root (the SDK's default base URL has no
/v1). No trailing slashes: a redirect would turn the SDK's POST into a GET."""

from django.urls import path

from sessions.api import views

urlpatterns = [
    path("computers", views.ComputerListCreateView.as_view(), name="computers"),
    path("computers/<str:session_id>", views.ComputerDetailView.as_view(), name="computer"),
    path("computers/<str:session_id>/status", views.ComputerStatusView.as_view(), name="computer-status"),
    path(
        "computers/<str:session_id>/keepalive",
        views.ComputerKeepaliveView.as_view(),
        name="computer-keepalive",
    ),
]
