"""The action result is built by a fast function (action_views.action_payload, on every action's
path) beside its one declaration (sessions/api/serializers.py). This holds the two together: the
payload of every action type, in every state, validates against the declaration as served in
/v1/openapi.json, and carries no key the declaration does not name. In-process, no browser."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from sessions.action_specs import CANONICAL, ENDPOINT_TYPES, NOT_SUPPORTED
from sessions.api.action_views import action_payload
from sessions.api.serializers import ActionDetail, ActionResult, BatchResult, BatchStep
from sessions.models import Action, ActionStatus
from tests.support.openapi_check import ResponseChecker

SESSION = "comp_0123456789abcdef01234567"
STATES = [
    (ActionStatus.SUCCEEDED, {"html_content": "<p>hi</p>"}, ""),
    (ActionStatus.FAILED, {"error_code": "blocked_address"}, "navigation refused"),
    (ActionStatus.ERRORED, None, "the browser exited"),
    (ActionStatus.CANCELLED, None, "the session ended"),
    (ActionStatus.QUEUED, None, ""),
    (ActionStatus.RUNNING, None, ""),
]


@pytest.fixture(scope="module")
def checker() -> ResponseChecker:
    response = Client().get("/v1/openapi.json")
    assert response.status_code == 200
    return ResponseChecker(response.json())


@pytest.fixture
def request_() -> Request:
    return Request(APIRequestFactory().post(f"/v1/computers/{SESSION}/click"))


def _action(action_type: str, status: str, result: Any, error: str) -> Action:
    now = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    finished = status not in (ActionStatus.QUEUED, ActionStatus.RUNNING)
    if action_type == "batch" and result is not None:
        step = {"type": "click", "status": status, "result": result, "error": error, "executed_tab_id": "t1"}
        result = {"steps": [step, {**step, "page_context": {"url": "http://127.0.0.1/", "title": "t"}}]}
        result["completed"] = 2
    return Action(
        public_id="act_0123456789abcdef01234567",
        session_id=SESSION,
        type=action_type,
        params={"x": 1, "y": 2},
        status=status,
        result=result,
        error=error,
        executed_tab_id="t1" if finished else "",
        page_context={"url": "http://127.0.0.1/", "title": "t", "tab_id": "t1"} if finished else None,
        price=1,
        created_at=now,
        started_at=now if status != ActionStatus.QUEUED else None,
        finished_at=now + timedelta(milliseconds=40) if finished else None,
    )


def _undeclared(payload: dict[str, Any], declaration: Any) -> set[str]:
    extra = set(payload) - set(declaration().fields)
    for step in payload.get("results", []):
        extra |= set(step) - set(BatchStep().fields)
    return extra


def _paths() -> list[tuple[str, str]]:
    """(action type, the path that submits it): each endpoint, /execute for the types only it
    takes (tabs...), /batch for a batch."""
    by_endpoint = [
        (t, f"/v1/computers/{SESSION}/{e}") for e, t in ENDPOINT_TYPES.items() if t not in NOT_SUPPORTED
    ]
    served = {t for t, _ in by_endpoint}
    generic = [(t, f"/v1/computers/{SESSION}/execute") for t in CANONICAL if t not in served]
    return [*by_endpoint, *generic, ("batch", f"/v1/computers/{SESSION}/batch")]


def test_every_action_type_answers_as_declared(checker, request_):
    seen_types = set()
    for action_type, path in _paths():
        for status, result, error in STATES:
            action = _action(action_type, status, result, error)
            body = action_payload(action, request_)
            http_status = 200
            if not action.is_finished:
                body["poll_url"] = f"http://testserver/v1/actions/{action.public_id}"
                http_status = 202
            checker.check("POST", path, http_status, "application/json", json.dumps(body).encode())
            declaration = BatchResult if action_type == "batch" else ActionResult
            assert not _undeclared(body, declaration), (action_type, status, _undeclared(body, declaration))

            detail = action_payload(action, request_, detail=True)
            checker.check(
                "GET", f"/v1/actions/{action.public_id}", 200, "application/json", json.dumps(detail).encode()
            )
            assert not _undeclared(detail, ActionDetail), (
                action_type,
                status,
                _undeclared(detail, ActionDetail),
            )
        seen_types.add(action_type)
    assert seen_types == (set(CANONICAL) | {"batch"})


def test_the_checker_fails_a_payload_that_drifts(checker, request_):
    # The check above can fail: a payload that lost a declared field is caught.
    body = action_payload(_action("click", ActionStatus.SUCCEEDED, {}, ""), request_)
    del body["action_status"]
    with pytest.raises(AssertionError, match="action_status"):
        checker.check(
            "POST", f"/v1/computers/{SESSION}/click", 200, "application/json", json.dumps(body).encode()
        )


def test_every_echoed_create_option_is_a_declared_session_field():
    from sessions.api.serializers import ECHOED_OPTIONS, SessionOutput

    assert set(ECHOED_OPTIONS) <= set(SessionOutput().fields)
