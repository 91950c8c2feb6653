"""The Computer API routes. Mounted at /v1/ and at the root (the SDK's default base URL has no
/v1). No trailing slashes: a redirect would turn the SDK's POST into a GET."""

from django.urls import path

from sessions.api import (
    action_views,
    environment_views,
    live_views,
    log_views,
    recording_views,
    stream_views,
    views,
)

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
    # Served by the ASGI stream handler (project/asgi.py STREAM_PATHS): async, no thread held.
    path(
        "computers/<str:session_id>/events",
        stream_views.async_stream_view(stream_views.ComputerEventsView),
        name="computer-events",
    ),
    path(
        "computers/<str:session_id>/screencast",
        stream_views.async_stream_view(stream_views.ComputerScreencastView),
        name="computer-screencast",
    ),
    path("computers/<str:session_id>/ws", action_views.StreamUnsupportedView.as_view()),
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

# Only under /v1/: not part of the Tzafon Computer API. Included before the Computer API's routes
# (whose last one takes any computers/<id>/<endpoint>).
v1_only_urlpatterns = [
    path("computers/<str:session_id>/live", live_views.ComputerLiveView.as_view(), name="computer-live"),
    path("computers/<str:session_id>/logs", log_views.ComputerLogsView.as_view(), name="computer-logs"),
    path(
        "computers/<str:session_id>/recording",
        recording_views.ComputerRecordingView.as_view(),
        name="computer-recording",
    ),
    # A recording's replay: the token in the path is the credential (sessions/recordings.py).
    path("replay/<str:token>", recording_views.ReplayPageView.as_view(), name="replay"),
    path("replay/<str:token>/replay.js", recording_views.ReplayScriptView.as_view(), name="replay-js"),
    path("replay/<str:token>/replay.css", recording_views.ReplayStyleView.as_view(), name="replay-css"),
    path("replay/<str:token>/index", recording_views.ReplayIndexView.as_view(), name="replay-index"),
    path("replay/<str:token>/mp4", recording_views.ReplayMp4View.as_view(), name="replay-mp4"),
    path(
        "replay/<str:token>/frames/<int:number>",
        recording_views.ReplayFrameView.as_view(),
        name="replay-frame",
    ),
    # The live viewer: the token in the path is the credential (sessions/live_viewer.py).
    path("live/<str:token>", live_views.LiveViewerPageView.as_view(), name="live-viewer"),
    path("live/<str:token>/viewer.js", live_views.LiveViewerScriptView.as_view(), name="live-viewer-js"),
    path("live/<str:token>/viewer.css", live_views.LiveViewerStyleView.as_view(), name="live-viewer-css"),
    path(
        "live/<str:token>/feed",
        stream_views.async_stream_view(live_views.LiveViewerFeedView),
        name="live-viewer-feed",
    ),
    path("live/<str:token>/input", live_views.LiveViewerInputView.as_view(), name="live-viewer-input"),
    path("actions/<str:action_id>", action_views.ActionDetailView.as_view(), name="action"),
    path("environments", environment_views.EnvironmentListView.as_view(), name="environments"),
    path(
        "environments/<str:environment_id>",
        environment_views.EnvironmentDetailView.as_view(),
        name="environment",
    ),
]
