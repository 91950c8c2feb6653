"""The OpenAPI description of the Computer API's operations: `extend_schema` decorators.

Every answer is declared once, in sessions/api/serializers.py: sessions by the serializers that
render them; action results by the declarations that action_views.action_payload (the hot path's
fast builder) is held to by tests/api/test_action_payloads.py, for every action type. What is
left here is per operation: summaries, parameters, request bodies of the generic endpoints,
examples, and the schema hooks.
"""

from __future__ import annotations

import functools
import re
from typing import Any, cast

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.views import APIView

from project.openapi import PAGE_PARAMETERS, error_response, errors, page_of
from sessions.action_specs import ALIASES, CANONICAL, ENDPOINT_TYPES, MAX_BATCH_ACTIONS, OptionalUrlParams
from sessions.api.serializers import (
    ActionDetail,
    ActionResult,
    BatchResult,
    SessionCreateInput,
    SessionOutput,
    SessionStatusOutput,
)

COMPUTERS = "computers"
ACTIONS = "actions"


class GenericAction(serializers.Serializer[Any]):
    """One action for /execute and /batch: `type` picks the command, the other keys are its
    parameters (those of the matching action endpoint)."""

    type = serializers.ChoiceField(choices=sorted(set(CANONICAL) | set(ALIASES)))
    x = serializers.FloatField(required=False)
    y = serializers.FloatField(required=False)
    x1 = serializers.FloatField(required=False)
    y1 = serializers.FloatField(required=False)
    x2 = serializers.FloatField(required=False)
    y2 = serializers.FloatField(required=False)
    dx = serializers.FloatField(required=False)
    dy = serializers.FloatField(required=False)
    text = serializers.CharField(required=False)
    keys = serializers.ListField(child=serializers.CharField(), required=False)
    key = serializers.CharField(required=False)
    button = serializers.CharField(required=False)
    url = serializers.CharField(required=False)
    tab_id = serializers.CharField(required=False)
    ms = serializers.IntegerField(required=False)
    include_context = serializers.BooleanField(required=False)


_PREFER = OpenApiParameter(
    "Prefer",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description="`respond-async`: answer 202 at once and poll `GET /v1/actions/{action_id}`.",
)
_WAIT = OpenApiParameter(
    "wait",
    OpenApiTypes.STR,
    enum=["true", "false", "0", "1"],
    description="`false`: as `Prefer: respond-async`.",
)
_ACTION_ERRORS = (402, 404, 409, 410, 413, 503)


def _accepted(serializer: Any) -> OpenApiResponse:
    return OpenApiResponse(
        serializer,
        description=(
            "Still running after the wait budget (or asked to answer at once): "
            "`status: pending`; poll `poll_url`."
        ),
    )


_ACTION_EXAMPLE = OpenApiExample(
    "done",
    value={
        "status": "success",
        "result": {},
        "error_message": None,
        "timestamp": "2026-11-01T12:00:01.250000Z",
        "request_id": "act_4f1e2d3c4b5a69788796a5b4",
        "action_id": "act_4f1e2d3c4b5a69788796a5b4",
        "action_status": "succeeded",
        "executed_tab_id": "tab_main",
        "page_context": None,
    },
    response_only=True,
    status_codes=["200"],
)


def action_schema(request: Any, *, summary: str, result: Any = ActionResult, **kwargs: Any) -> Any:
    kwargs.setdefault(
        "description",
        "Runs in the session's queue, one action at a time. A failure on the page (element not "
        'found, navigation error) is HTTP 200 with `status: "error"`; bad parameters are 400 '
        "and run nothing.",
    )
    examples = kwargs.pop("examples", [])
    if result is ActionResult:
        examples = [*examples, _ACTION_EXAMPLE]
    return extend_schema(
        tags=[ACTIONS],
        summary=summary,
        request=request,
        parameters=[_WAIT, _PREFER],
        responses={
            200: OpenApiResponse(result, description="Finished: `status` success or error."),
            202: _accepted(result),
            **errors(*_ACTION_ERRORS),
        },
        examples=examples,
        **kwargs,
    )


# Tzafon endpoint -> request body and summary (the request is the action's parameters).
def _endpoint_doc(endpoint: str, action_type: str) -> tuple[Any, str]:
    notes = {
        "navigate": "Open a URL (http/https) in the tab.",
        "screenshot": "PNG; `result.screenshot_url` (a data: URI with `base64: true`).",
        "html": "`result.html_content`.",
        "observe": "The page's interactive elements with their boxes (NotexAI).",
        "step": "One high-level step on an element: click, fill, select, press... (NotexAI).",
        "scrape": "Structured data by a selector schema, or the page as markdown (NotexAI).",
        "wait": "Sleep `ms` milliseconds in the session's queue.",
        "change-proxy": (
            "The session's upstream proxy from now on (`http://[user:pass@]host:port`, or `direct`): "
            "its open connections are closed, new ones go through it. Credentials are never shown "
            "again; a proxy on a private address is 400 `blocked_address`. Billed as an action."
        ),
    }
    return CANONICAL[action_type], notes.get(endpoint, f"The `{action_type}` action.")


_UNSUPPORTED_BODY = inline_serializer(
    "UnsupportedAction",
    {
        "command": serializers.CharField(required=False),
        "tab_id": serializers.CharField(required=False),
    },
)


@functools.cache
def _action_view(endpoint: str, action_type: str, base: type[APIView]) -> type[APIView]:
    """A subclass of the generic action view that describes one endpoint (schema only)."""
    name = "".join(part.title() for part in re.split(r"[-_]", endpoint)) + "ActionView"
    if action_type == "debug":
        decorator = extend_schema(
            tags=[ACTIONS],
            summary=f"{endpoint}: not served (501)",
            request=_UNSUPPORTED_BODY,
            responses={501: error_response(501), **errors(404)},
        )
    else:
        body, summary = _endpoint_doc(endpoint, action_type)
        decorator = action_schema(body, summary=summary)

    def post(self: Any, request: Any, session_id: str) -> Any:
        raise AssertionError("describes an endpoint; never routed")

    return cast("type[APIView]", type(name, (base,), {"__module__": __name__, "post": decorator(post)}))


def expand_action_endpoints(endpoints: list[tuple[str, str, str, Any]]) -> list[tuple[str, str, str, Any]]:
    """drf-spectacular preprocessing hook: `computers/{id}/{endpoint}` is one route that serves
    every action endpoint; describe each endpoint as its own path with its own body."""
    out = []
    for path, path_regex, method, callback in endpoints:
        if not path.endswith("/{endpoint}"):
            out.append((path, path_regex, method, callback))
            continue
        for endpoint, action_type in ENDPOINT_TYPES.items():
            view = _action_view(endpoint, action_type, callback.cls)
            concrete_regex = path_regex.replace("(?P<endpoint>[^/]+)", re.escape(endpoint))
            out.append((path.replace("{endpoint}", endpoint), concrete_regex, method, view.as_view()))
    return out


class ServerSentEvent(serializers.Serializer[Any]):
    """One event of a `text/event-stream` answer, as an SSE client parses it; `data` is JSON text."""

    event = serializers.CharField(required=False, help_text="The event's name; none: a screencast frame.")
    data = serializers.CharField(  # type: ignore[assignment]  # a field named like Serializer.data, only described
        required=False, help_text="JSON text (see the operation's description)."
    )
    id = serializers.CharField(required=False, help_text="Send it back as Last-Event-ID to resume after it.")
    retry = serializers.IntegerField(required=False, help_text="Reconnection delay, in milliseconds.")


SESSION_ID = OpenApiParameter(
    "session_id", OpenApiTypes.STR, OpenApiParameter.PATH, description="The session id, `comp_...`."
)

_COMPUTER_EXAMPLE = OpenApiExample(
    "a ready browser",
    value={
        "id": "comp_9f2c4e1a7b3d",
        "kind": "browser",
        "status": "ready",
        "ended_reason": None,
        "created_at": "2026-11-01T12:00:00Z",
        "started_at": "2026-11-01T12:00:01Z",
        "ended_at": None,
        "expires_at": "2026-11-01T13:00:00Z",
        "idle_expires_at": "2026-11-01T12:02:00Z",
        "last_activity_at": "2026-11-01T12:00:00Z",
        "max_lifetime_seconds": 3600,
        "inactivity_timeout_seconds": 120,
        "idle_timeout_enabled": True,
        "auto_kill": True,
        "display": {"width": 1024, "height": 768, "scale": 1.0},
        "endpoints": {},
        "credits_spent": 0,
        "persistent": None,
        "environment_id": None,
        "context_id": None,
        "stealth": None,
        "use_advanced_proxy": None,
    },
    response_only=True,
)

computer_list_schema = extend_schema(
    tags=[COMPUTERS],
    summary="List sessions",
    parameters=[
        OpenApiParameter("type", OpenApiTypes.STR, enum=["live", "persistent"], description="Tzafon filter."),
        OpenApiParameter(
            "status", OpenApiTypes.STR, enum=["live", "terminated", "all"], description="Default live."
        ),
        OpenApiParameter("limit", OpenApiTypes.INT, description="1-500, default 100."),
    ],
    responses={200: SessionOutput(many=True), **errors()},
)
computer_create_schema = extend_schema(
    tags=[COMPUTERS],
    summary="Start a browser session",
    description=(
        "Answers once the browser is up (or after the wait budget, then `status: starting`). "
        "Unsupported Tzafon options are accepted and echoed."
    ),
    request=SessionCreateInput,
    # 404/409/422: `environment_id` unknown, in use by a writer or being saved, not restorable.
    responses={201: SessionOutput, **errors(402, 404, 409, 422, 503)},
    examples=[
        OpenApiExample("defaults", value={}, request_only=True),
        OpenApiExample(
            "display and idle timeout",
            value={"display": {"width": 1280, "height": 800, "scale": 1}, "inactivity_timeout_seconds": 300},
            request_only=True,
        ),
        _COMPUTER_EXAMPLE,
    ],
)
computer_retrieve_schema = extend_schema(
    tags=[COMPUTERS],
    summary="A session (ended ones answer with status terminated)",
    parameters=[SESSION_ID],
    responses={200: SessionOutput, **errors(404)},
    examples=[_COMPUTER_EXAMPLE],
)
computer_delete_schema = extend_schema(
    tags=[COMPUTERS],
    summary="End a session (idempotent)",
    parameters=[SESSION_ID],
    responses={200: SessionOutput, **errors(404)},
)
computer_status_schema = extend_schema(
    tags=[COMPUTERS],
    summary="A session's TTLs and last activity",
    parameters=[SESSION_ID],
    responses={200: SessionStatusOutput, **errors(404)},
)
computer_keepalive_schema = extend_schema(
    tags=[COMPUTERS],
    summary="Reset the idle timer",
    parameters=[SESSION_ID],
    request=None,
    responses={200: SessionOutput, **errors(404, 409, 410)},
)
execute_schema = action_schema(
    inline_serializer("ExecuteRequest", {"action": GenericAction()}),
    summary="One action by its `type` (the action may also be sent at the top level)",
    examples=[
        OpenApiExample("wait", value={"action": {"type": "wait", "ms": 500}}, request_only=True),
        OpenApiExample("click", value={"action": {"type": "click", "x": 200, "y": 140}}, request_only=True),
    ],
)
batch_schema = action_schema(
    inline_serializer(
        "BatchRequest",
        {
            "actions": serializers.ListSerializer(
                child=GenericAction(), min_length=1, max_length=MAX_BATCH_ACTIONS
            )
        },
    ),
    summary="Several actions in order, stopping at the first error",
    result=BatchResult,
    examples=[
        OpenApiExample(
            "type then submit",
            value={"actions": [{"type": "type", "text": "hello"}, {"type": "keypress", "keys": ["Enter"]}]},
            request_only=True,
        )
    ],
)
tabs_list_schema = action_schema(None, summary="List tabs: `result.tabs`")
tabs_create_schema = action_schema(OptionalUrlParams, summary="Open a tab (it becomes the main tab)")
tab_close_schema = action_schema(None, summary="Close a tab (never the last one)")
tab_switch_schema = action_schema(None, summary="Make a tab the main tab")

_EXEC_BODY = inline_serializer(
    "ExecRequest",
    {
        "command": serializers.CharField(required=False),
        "cwd": serializers.CharField(required=False),
        "env": serializers.DictField(child=serializers.CharField(), required=False),
        "timeout_seconds": serializers.IntegerField(required=False),
    },
)
_EXEC_LINE = inline_serializer(
    "ExecLine",
    {
        "type": serializers.ChoiceField(choices=["stdout", "stderr", "exit", "error"]),
        "code": serializers.CharField(required=False),
        "message": serializers.CharField(required=False),
        "data": serializers.CharField(required=False),
    },
)
exec_schema = extend_schema(
    tags=[ACTIONS],
    summary="Shell command as an NDJSON stream: not served (one error line)",
    description=(
        "Shell commands need a desktop session. With `Accept: application/x-ndjson` (the SDK) "
        'the answer is HTTP 200 with one line `{"type": "error", "code": '
        '"action_not_supported", "message": ...}`, the SDK\'s error model; otherwise 501.'
    ),
    request=_EXEC_BODY,
    responses={
        (200, "application/x-ndjson"): OpenApiResponse(_EXEC_LINE, description="One error line."),
        501: error_response(501),
        **errors(404),
    },
)
exec_sync_schema = extend_schema(
    tags=[ACTIONS],
    summary="Shell command, buffered: not served (501)",
    request=_EXEC_BODY,
    responses={501: error_response(501), **errors(404)},
)
screencast_schema = extend_schema(
    tags=[ACTIONS],
    summary="The session's page as a live JPEG screencast (server-sent events)",
    description=(
        "`text/event-stream`. Each unnamed event's `data` is "
        '`{"image_data": <base64 JPEG>, "metadata": {"timestamp", "width", "height", '
        '"device_width", "device_height", "page_scale_factor", "offset_top", "scroll_offset_x", '
        '"scroll_offset_y"}}` (`width`/`height`: the JPEG\'s pixels). Frames come when the page '
        "changes (DevTools' screencast), the latest one first; a `: heartbeat` comment every 30 s. "
        "The stream ends when the session ends. Watching is not activity: it does not reset the "
        "idle timer. Local backend only (501 on Grid)."
    ),
    parameters=[SESSION_ID],
    responses={
        (200, "text/event-stream"): OpenApiResponse(
            ServerSentEvent, description="The frames, one event each."
        ),
        **errors(404, 409, 410, 429, 501),
    },
)
stream_schema = extend_schema(
    tags=[ACTIONS],
    summary="WebSocket stream: not served (501)",
    responses={501: error_response(501), **errors(404)},
)
events_schema = extend_schema(
    tags=[ACTIONS],
    summary="The session's life as server-sent events",
    description=(
        "`text/event-stream`. Events: `action_request` (an accepted action: `request_id` = the "
        "action's id, `type`, `created_at`), `action_response` (it finished: `status` success or "
        "error, `action_status`, `error_message`, `code`, `created_at`, `started_at`, "
        "`finished_at`, `queued_ms`, `duration_ms`), `status` (`ready`, `running`, `terminated` "
        "with `ended_reason`: the stream ends after it), and `error` if the stream cannot go on. "
        "A `: keepalive` comment comes when nothing happened for a while. Each event has an `id`: "
        "reconnect with `Last-Event-ID` to get what came after it, as long as it is kept "
        "(docs/streams.md). Without it, the stream starts with the oldest event kept. Watching "
        "is not activity: it does not reset the idle timer."
    ),
    parameters=[
        SESSION_ID,
        OpenApiParameter(
            "Last-Event-ID",
            OpenApiTypes.STR,
            OpenApiParameter.HEADER,
            description="Resume after this event id.",
        ),
    ],
    responses={
        (200, "text/event-stream"): OpenApiResponse(
            ServerSentEvent, description="The events, one at a time."
        ),
        **errors(404, 429),
    },
)
action_detail_schema = extend_schema(
    tags=[ACTIONS],
    summary="An action by id: poll this after a 202",
    parameters=[OpenApiParameter("action_id", OpenApiTypes.STR, OpenApiParameter.PATH)],
    responses={200: ActionDetail, **errors(404)},
)
action_history_schema = extend_schema(
    tags=[ACTIONS],
    summary="A session's actions, newest first",
    parameters=[SESSION_ID, *PAGE_PARAMETERS],
    responses={200: page_of("ActionPage", ActionDetail(many=True)), **errors(404)},
)
screenshot_schema = extend_schema(
    tags=[ACTIONS],
    operation_id="screenshot_retrieve",
    summary="A screenshot (the unguessable, expiring URL is the credential)",
    auth=[],
    responses={
        (200, "image/png"): OpenApiResponse(OpenApiTypes.BINARY, description="The PNG."),
        404: error_response(404, "Unknown or expired."),
    },
)


def describe_root_mount(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: the Computer API's root mount (for the SDK's default
    base URL, which has no /v1) gets its own tag, so the docs page lists each operation once
    per mount instead of twice under one heading; and create links to what acts on its id."""
    for path, item in result["paths"].items():
        if not path.startswith("/v1/"):
            for operation in item.values():
                operation["tags"] = [f"{tag} (root mount)" for tag in operation.get("tags", [])]
    for prefix in ("", "/v1"):
        created = result["paths"].get(f"{prefix}/computers", {}).get("post")
        if created is None:
            continue
        links = {}
        for path, item in result["paths"].items():
            if not path.startswith(f"{prefix}/computers/{{session_id}}") or "{tab_id}" in path:
                continue
            for operation in item.values():
                links[operation["operationId"]] = {
                    "operationId": operation["operationId"],
                    "parameters": {"session_id": "$response.body#/id"},
                }
        created["responses"]["201"]["links"] = links
    return result
