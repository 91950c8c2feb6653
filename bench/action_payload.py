"""The action result, rendered in-process: the fast builder against a DRF serializer.

    bin/dev bench action_payload [--number 5000]

`sessions.api.action_views.action_payload` builds every action's answer by hand, beside its
declaration (`sessions.api.serializers.ActionResult`). This measures what the HackSoft-style
alternative would cost on that path: a DRF serializer (SerializerMethodFields for the derived
values, as it would have to be written) rendering the same answer, constructed per response as a
view would. No database, no browser: both take an unsaved Action. Prints microseconds per call.
Issue 18's rule: more than ~0.1 ms per action keeps the builder (checked by
tests/api/test_action_payloads.py against the declaration).
"""

from __future__ import annotations

import argparse
import os
import sys
import timeit
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--number", type=int, default=5000, help="calls per measurement (5000)")
    args = parser.parse_args()

    import django

    django.setup()
    from rest_framework import serializers
    from rest_framework.request import Request
    from rest_framework.test import APIRequestFactory

    from project.fields import iso
    from sessions.api.action_views import _RESULT_STATUS, _render_result, action_payload
    from sessions.api.serializers import PageContext
    from sessions.models import Action, ActionStatus

    class ActionResultSerializer(serializers.Serializer[Action]):
        status = serializers.SerializerMethodField()
        result = serializers.SerializerMethodField()
        error_message = serializers.SerializerMethodField()
        timestamp = serializers.SerializerMethodField()
        request_id = serializers.SerializerMethodField()
        action_id = serializers.CharField(source="public_id")
        action_status = serializers.CharField(source="status")
        executed_tab_id = serializers.SerializerMethodField()
        page_context = PageContext(allow_null=True)

        def get_status(self, a: Action) -> str:
            return _RESULT_STATUS.get(a.status, "pending")

        def get_result(self, a: Action) -> dict[str, Any]:
            return _render_result(a.result, self.context["request"]) if a.is_finished else {}

        def get_error_message(self, a: Action) -> str | None:
            return a.error or None

        def get_timestamp(self, a: Action) -> str | None:
            return iso(a.finished_at or a.created_at)

        def get_request_id(self, a: Action) -> str:
            return a.request_id or a.public_id

        def get_executed_tab_id(self, a: Action) -> str | None:
            return a.executed_tab_id or None

    now = datetime.now(UTC)
    action = Action(
        public_id="act_0123456789abcdef01234567",
        type="html",
        params={},
        status=ActionStatus.SUCCEEDED,
        result={"html_content": "<p>hello</p>"},
        created_at=now,
        started_at=now,
        finished_at=now + timedelta(milliseconds=5),
        executed_tab_id="tab_main",
        page_context={"url": "http://127.0.0.1/", "title": "t"},
        session_id="comp_0123456789abcdef01234567",
    )
    request = Request(APIRequestFactory().post("/v1/computers/comp_x/html"))
    assert set(ActionResultSerializer(action, context={"request": request}).data) == set(
        action_payload(action, request)
    )
    n = args.number
    builder = min(timeit.repeat(lambda: action_payload(action, request), number=n, repeat=3)) / n
    serializer = (
        min(
            timeit.repeat(
                lambda: ActionResultSerializer(action, context={"request": request}).data, number=n, repeat=3
            )
        )
        / n
    )
    print(f"load average {os.getloadavg()} on {os.cpu_count()} CPUs; best of 3 x {n} calls")
    print(f"builder (action_payload): {builder * 1e6:.1f} us per action")
    print(
        f"DRF serializer:           {serializer * 1e6:.1f} us per action "
        f"(+{(serializer - builder) * 1e6:.1f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
