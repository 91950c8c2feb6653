"""The Computer API routes. Mounted at /v1/ and at the root (the SDK's default base URL has no
/v1). No trailing slashes: a redirect would turn the SDK's POST into a GET."""

from django.urls import path

from sessions.api import action_views, environment_views, views

urlpatterns = [
    path("computers", views.ComputerListCreateView.as_view(), name="computers"),
    path("computers/<str:session_id>", views.ComputerDetailView.as_view(), name="computer"),
    path("computers/<str:session_id>/status", views.ComputerStatusView.as_view(), name="computer-status"),
    path(
        "computers/<str:session_id>/keepalive",
        views.ComputerKeepaliveView.as_view(),
        name="computer-keepalive",
    ),
    path("computers/<str:session_id>/execute", action_views.ExecuteView.as_view(), name="computer-execute"),
    path("computers/<str:session_id>/batch", action_views.BatchView.as_view(), name="computer-batch"),
    path("computers/<str:session_id>/tabs", action_views.TabsView.as_view(), name="computer-tabs"),
    path(
        "computers/<str:session_id>/tabs/<str:tab_id>",
        action_views.TabDetailView.as_view(),
        name="computer-tab",
    ),
    path(
        "computers/<str:session_id>/tabs/<str:tab_id>/switch",
        action_views.TabSwitchView.as_view(),
        name="computer-tab-switch",
    ),
    path("computers/<str:session_id>/exec", action_views.ExecStreamView.as_view(), name="computer-exec"),
    path(
        "computers/<str:session_id>/exec/sync",
        action_views.ExecUnsupportedView.as_view(),
        name="computer-exec-sync",
    ),
    *(
        path(f"computers/<str:session_id>/{stream}", action_views.StreamUnsupportedView.as_view())
        for stream in ("events", "screencast", "ws")
    ),
    path(
        "computers/<str:session_id>/state",
        environment_views.ComputerStateView.as_view(),
        name="computer-state",
    ),
    path(
        "computers/<str:session_id>/actions",
        action_views.SessionActionsView.as_view(),
        name="computer-actions",
    ),
    path(
        "computers/<str:session_id>/<str:endpoint>",
        action_views.ComputerActionView.as_view(),
        name="computer-action",
    ),
]

# Only under /v1/: not part of the Tzafon Computer API.
v1_only_urlpatterns = [
    path("actions/<str:action_id>", action_views.ActionDetailView.as_view(), name="action"),
    path("environments", environment_views.EnvironmentListView.as_view(), name="environments"),
    path(
        "environments/<str:environment_id>",
        environment_views.EnvironmentDetailView.as_view(),
        name="environment",
    ),
]
