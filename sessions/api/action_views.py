"""Browser actions over HTTP: thin views around sessions.action_queue and action_specs."""

from __future__ import annotations

import base64
import json
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import FileResponse, HttpResponse, HttpResponseBase
from django.urls import reverse
from rest_framework import status
from rest_framework.exceptions import APIException, NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import request_account, request_key
from accounts.inflight import inflight_slot_accepting
from project.awaiting import awaited_response
from project.exceptions import ApplicationError, InvalidInput, NotFound, NotImplementedByServer
from project.fields import iso
from project.pagination import paginate
from sessions import selectors
from sessions.action_queue import action_completed, action_event, action_submit
from sessions.action_specs import (
    ENDPOINT_TYPES,
    NOT_SUPPORTED,
    normalize_action,
    normalize_batch,
    normalize_generic,
)
from sessions.api import schema
from sessions.api.views import client_wait_budget
from sessions.models import Action, ActionStatus
from sessions.screenshots import screenshot_path_of

_RESULT_STATUS: dict[str, str] = {
    ActionStatus.SUCCEEDED: "success",
    ActionStatus.FAILED: "error",
    ActionStatus.ERRORED: "error",
    ActionStatus.CANCELLED: "error",
}


def _render_result(result: dict[str, Any] | None, request: Request) -> dict[str, Any]:
    result = dict(result or {})
    result.pop("error_code", None)  # shown as the action's `code`
    token = result.pop("screenshot_token", None)
    as_data_uri = result.pop("base64", False)
    if token:
        path = screenshot_path_of(token)
        if path is None or not default_storage.exists(path):
            result["screenshot_url"] = None  # expired and purged
        elif as_data_uri:
            with default_storage.open(path, "rb") as f:
                result["screenshot_url"] = "data:image/png;base64," + base64.b64encode(f.read()).decode()
        else:
            result["screenshot_url"] = request.build_absolute_uri(reverse("screenshot", args=[token]))
    return result


def _error_code(result: dict[str, Any] | None) -> dict[str, Any]:
    """A failed action's machine-readable code (e.g. blocked_address), when it has one."""
    code = (result or {}).get("error_code")
    return {"code": code} if code else {}


def _step_payload(step: dict[str, Any], request: Request) -> dict[str, Any]:
    return {
        "type": step["type"],
        "status": _RESULT_STATUS.get(step["status"], "error"),
        "result": _render_result(step.get("result"), request),
        "error_message": step.get("error") or None,
        **_error_code(step.get("result")),
        "executed_tab_id": step.get("executed_tab_id") or None,
        "page_context": step.get("page_context"),
    }


def action_payload(action: Action, request: Request, *, detail: bool = False) -> dict[str, Any]:
    """The Tzafon ActionResult for an action (a batch answers with its steps)."""
    body: dict[str, Any] = {
        "status": _RESULT_STATUS.get(action.status, "pending"),
        "error_message": action.error or None,
        "timestamp": iso(action.finished_at or action.created_at),
        "request_id": action.request_id or action.public_id,
        "action_id": action.public_id,
        "action_status": action.status,
    }
    if action.type == "batch":
        steps = (action.result or {}).get("steps", [])
        body["results"] = [_step_payload(step, request) for step in steps]
        body["completed"] = (action.result or {}).get("completed", 0)
        body["success"] = action.status == ActionStatus.SUCCEEDED
    else:
        body["result"] = _render_result(action.result, request) if action.is_finished else {}
        body.update(_error_code(action.result))
        body["executed_tab_id"] = action.executed_tab_id or None
        body["page_context"] = action.page_context
    if detail:
        body.update(
            session_id=action.session_id,
            type=action.type,
            # change_proxy's sealed credentials are the worker's, not the tenant's to read back.
            params={k: v for k, v in action.params.items() if k != "sealed"}
            if action.type == "change_proxy"
            else action.params,
            created_at=iso(action.created_at),
            started_at=iso(action.started_at),
            finished_at=iso(action.finished_at),
            duration_ms=action.duration_ms,
        )
    return body


def _prefers_async(request: Request) -> bool:
    if request.query_params.get("wait") in ("false", "0"):
        return True
    return "respond-async" in request.headers.get("Prefer", "")


def _answer(action: Action, request: Request) -> Response:
    if not action.is_finished:
        body = action_payload(action, request)
        body["poll_url"] = request.build_absolute_uri(f"/v1/actions/{action.public_id}")
        return Response(body, status=status.HTTP_202_ACCEPTED)
    return Response(action_payload(action, request))


def submit(view: APIView, request: Request, session_id: str, build: Any) -> HttpResponseBase:
    """Validate (400, but 404 first for an unknown session), accept (410/409/402), then wait or 202.

    The wait holds no web thread (project/awaiting.py): the answer comes from the completion."""
    try:
        spec = build()
    except (ApplicationError, APIException):
        selectors.session_get(account=request_account(request), session_id=session_id)  # 404 wins over 400
        raise
    account = request_account(request)
    if _prefers_async(request):
        action = action_submit(
            session_id=session_id, account=account, action=spec, api_key=request_key(request)
        )
        return _answer(action, request)
    budget = client_wait_budget(request, settings.ACTION_WAIT_SECONDS)
    # Taken before the accept: a 429 means nothing was charged or queued.
    with inflight_slot_accepting(account=account, wait_seconds=budget) as slot:
        action = action_submit(
            session_id=session_id, account=account, action=spec, api_key=request_key(request)
        )
    return awaited_response(
        view,
        request,
        event=action_event(action.public_id),
        timeout=budget,
        then=lambda done: _answer(action_completed(action=action, done=done), request),
        slot=slot,
    )


def _body(request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise InvalidInput("The request body must be a JSON object.")
    return request.data


class ComputerActionView(APIView):
    """POST /computers/{id}/<action>: one Tzafon (or NotexAI) action."""

    def post(self, request: Request, session_id: str, endpoint: str) -> HttpResponseBase:
        action_type = ENDPOINT_TYPES.get(endpoint)
        if action_type is None:
            raise NotFound(f"Unknown action endpoint {endpoint!r}.")
        return submit(self, request, session_id, lambda: normalize_action(action_type, _body(request)))


class ExecuteView(APIView):
    @schema.execute_schema
    def post(self, request: Request, session_id: str) -> HttpResponseBase:
        def build() -> dict[str, Any]:
            body = _body(request)
            # SDK 2.44 sends {"action": {...}}; older docs show the action at the top level.
            return normalize_generic(body.get("action", body))

        return submit(self, request, session_id, build)


class BatchView(APIView):
    @schema.batch_schema
    def post(self, request: Request, session_id: str) -> HttpResponseBase:
        return submit(
            self,
            request,
            session_id,
            lambda: {"type": "batch", "actions": normalize_batch(_body(request).get("actions"))},
        )


class TabsView(APIView):
    @schema.tabs_list_schema
    def get(self, request: Request, session_id: str) -> HttpResponseBase:
        return submit(self, request, session_id, lambda: normalize_action("list_tabs", {}))

    @schema.tabs_create_schema
    def post(self, request: Request, session_id: str) -> HttpResponseBase:
        return submit(self, request, session_id, lambda: normalize_action("new_tab", _body(request)))


class TabDetailView(APIView):
    @schema.tab_close_schema
    def delete(self, request: Request, session_id: str, tab_id: str) -> HttpResponseBase:
        return submit(self, request, session_id, lambda: normalize_action("close_tab", {"tab_id": tab_id}))


class TabSwitchView(APIView):
    @schema.tab_switch_schema
    def post(self, request: Request, session_id: str, tab_id: str) -> HttpResponseBase:
        return submit(self, request, session_id, lambda: normalize_action("switch_tab", {"tab_id": tab_id}))


class ExecUnsupportedView(APIView):
    """exec/sync: a 501 JSON error."""

    @schema.exec_sync_schema
    def post(self, request: Request, session_id: str) -> Response:
        selectors.session_get(account=request_account(request), session_id=session_id)
        normalize_action("debug", {})  # raises the 501
        raise AssertionError("unreachable")


NDJSON = "application/x-ndjson"


class _NeverNotAcceptable(DefaultContentNegotiation):
    """The SDK's exec asks for NDJSON only: errors before the stream (401, 404, 429) still answer
    in JSON, instead of a 406 raised before authentication even runs."""

    def select_renderer(self, request: Request, renderers: Any, format_suffix: str | None = None) -> Any:
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except NotAcceptable:
            return renderers[0], renderers[0].media_type


class ExecStreamView(ExecUnsupportedView):
    """exec: the SDK reads an NDJSON stream whose failures are one `{"type": "error"}` line at
    HTTP 200 (its documented error model). Clients that do not ask for NDJSON get the 501."""

    content_negotiation_class = _NeverNotAcceptable

    @schema.exec_schema
    def post(self, request: Request, session_id: str) -> Response:
        if NDJSON not in request.headers.get("Accept", ""):
            return super().post(request, session_id)
        selectors.session_get(account=request_account(request), session_id=session_id)
        line = {"type": "error", "code": "action_not_supported", "message": NOT_SUPPORTED["debug"]}
        return HttpResponse(json.dumps(line) + "\n", content_type=NDJSON)  # type: ignore[return-value]


class StreamUnsupportedView(APIView):
    """events, screencast, ws: the SDK cannot consume these streams; we do not serve them yet."""

    @schema.stream_schema
    def get(self, request: Request, session_id: str) -> Response:
        selectors.session_get(account=request_account(request), session_id=session_id)
        raise NotImplementedByServer(
            "Event, screencast and WebSocket streams are not served by this server; poll "
            "GET /v1/computers/{id}/actions and take screenshots instead.",
            code="stream_not_supported",
        )


class ActionDetailView(APIView):
    @schema.action_detail_schema
    def get(self, request: Request, action_id: str) -> Response:
        return Response(
            action_payload(
                selectors.action_get(account=request_account(request), action_id=action_id),
                request,
                detail=True,
            )
        )


class SessionActionsView(APIView):
    """The session's action history, newest first: ?limit= (1-200, default 50) &offset=."""

    @schema.action_history_schema
    def get(self, request: Request, session_id: str) -> Response:
        session = selectors.session_get(account=request_account(request), session_id=session_id)
        page = paginate(request, selectors.action_list(session=session))
        return Response(
            {
                "results": [action_payload(a, request, detail=True) for a in page.pop("items")],
                **page,
            }
        )


class ScreenshotView(APIView):
    """The URL itself is the credential: random, signed and expiring."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    @schema.screenshot_schema
    def get(self, request: Request, token: str) -> FileResponse:
        path = screenshot_path_of(token)
        if path is None or not default_storage.exists(path):
            raise NotFound(
                "This screenshot does not exist or its URL has expired.", code="screenshot_not_found"
            )
        response = FileResponse(default_storage.open(path, "rb"), content_type="image/png")
        response["Cache-Control"] = "private, max-age=300"
        return response
