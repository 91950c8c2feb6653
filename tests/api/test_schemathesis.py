"""schemathesis against the live server, from the OpenAPI description it serves: every
operation, real sessions and actions on a real browser, no 5xx, every answer as described.

Bounded so that it stays well under 3 minutes on an idle 2-core machine: a few examples per
operation, one live session shared by every session-scoped operation (a second one for the
DELETEs, which would otherwise end it), and page-bound values (URLs, waits) kept on pages this
test serves and short.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_schema_conformance,
    status_code_conformance,
)

from project.redis import get_redis


def no_server_error(ctx: Any, response: Any, case: Any) -> bool | None:
    """A 5xx is our bug, except the 501 an operation declares (a feature not served)."""
    if response.status_code == 501 and "501" in case.operation.definition.raw["responses"]:
        return True
    return not_a_server_error(ctx, response, case)


CHECKS = [
    no_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    ignored_auth,
]
# Per operation under /v1/; the root mount serves the same views, so it gets fewer.
EXAMPLES = {GenerationMode.POSITIVE: 4, GenerationMode.NEGATIVE: 2}
ROOT_EXAMPLES = {GenerationMode.POSITIVE: 2, GenerationMode.NEGATIVE: 1}
# Keys whose values make the browser wait; generated values could hold it for up to 30 s each.
_SLOW_KEYS = {"ms", "timeout_ms", "settle_ms"}


def _tame(value: Any, page: str) -> Any:
    """Every URL points at our own page (never the internet), every wait is short."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "url" and isinstance(item, str):
                out[key] = page
            elif key in _SLOW_KEYS and isinstance(item, int | float) and not isinstance(item, bool):
                out[key] = min(item, 100)
            elif key in ("text", "value") and isinstance(item, str):
                out[key] = item[:40]
            else:
                out[key] = _tame(item, page)
        return out
    if isinstance(value, list):
        return [_tame(item, page) for item in value]
    return value


def _prepare(case: Any, page: str, auth: dict[str, str]) -> None:
    """The valid key always (auth is probed by ignored_auth), tamed bodies."""
    case.headers = {**(case.headers or {}), **auth}
    if case.body is not None:
        case.body = _tame(case.body, page)


@pytest.fixture
def lockout_out_of_the_way(settings: Any) -> Iterator[None]:
    """schemathesis's ignored_auth check sends each operation without a key and with a wrong
    one, on purpose; the failed-auth lockout (10 per address) would turn every later answer into
    a 429. The live server runs in this process, so raising the limit here reaches it; the
    failures it recorded are forgotten afterwards so that later tests start clean. The lockout
    itself is tested in tests/accounts/test_auth.py."""
    settings.AUTH_LOCKOUT_MAX_FAILURES = 1_000_000
    yield
    get_redis().delete("bf:authfail:127.0.0.1", "bf:authfail:::1")


def test_every_operation_answers_as_described_and_never_5xx(
    make_client, pages_server, live_server, lockout_out_of_the_way
):
    client = make_client(plan="enterprise", credits=10**9, name="schemathesis")
    page = pages_server + "/flow.html"
    live = client.post("/v1/computers", {}).json()["id"]
    assert client.post(f"/v1/computers/{live}/navigate", {"url": page}).json()["status"] == "success"
    doomed = client.post("/v1/computers", {}).json()["id"]
    shot = client.post(f"/v1/computers/{live}/screenshot", {}).json()
    token = shot["result"]["screenshot_url"].rsplit("/", 1)[1].removesuffix(".png")
    # A real batch job, so that the job-scoped operations act on it (a finished one answers 409
    # to a cancel, as described).
    job = client.post("/v1/jobs", {"urls": [page], "scrape": {"format": "text"}})
    assert job.status_code == 201, job.text
    known = {"action_id": shot["action_id"], "token": token, "job_id": job.json()["id"]}

    schema = schemathesis.openapi.from_url(live_server.url + "/v1/openapi.json")
    http = requests.Session()
    auth = {"Authorization": f"Bearer {client.key}"}
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        names = {parameter.name for parameter in operation.path_parameters}
        fixed = {name: value for name, value in known.items() if name in names}
        if "session_id" in names:
            fixed["session_id"] = (
                doomed if operation.method.upper() == "DELETE" and "{tab_id}" not in operation.path else live
            )
        for mode, examples in (EXAMPLES if operation.path.startswith("/v1/") else ROOT_EXAMPLES).items():

            @given(case=operation.as_strategy(generation_mode=mode, path_parameters=fixed))
            @hypothesis_settings(
                max_examples=examples,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def run(case: Any) -> None:
                _prepare(case, page, auth)
                response = case.call(base_url=live_server.url, session=http, headers=auth)
                case.validate_response(response, checks=CHECKS, headers=auth)

            try:
                run()
            except Unsatisfiable:
                assert mode == GenerationMode.NEGATIVE  # nothing in it can be made invalid
            except (
                Exception,
                BaseExceptionGroup,
            ) as exc:  # collect every operation's failure, then report them all
                failures.append(f"{operation.label} [{mode.value}]: {exc}")
    assert operations > 80
    assert not failures, "\n\n".join(failures)


def test_stateful_create_act_delete_follows_the_schemas_links(
    make_client, pages_server, live_server, lockout_out_of_the_way
):
    """The create's 201 links every session-scoped operation to its `id`: schemathesis chains
    create -> act -> ... -> delete on sessions it made itself."""
    client = make_client(plan="enterprise", credits=10**9, name="schemathesis-stateful")
    page = pages_server + "/flow.html"
    auth = {"Authorization": f"Bearer {client.key}"}
    schema = schemathesis.openapi.from_url(live_server.url + "/v1/openapi.json").include(
        path_regex=r"^/v1/computers"
    )

    steps: list[str] = []

    class Scenario(schema.as_state_machine()):  # type: ignore[misc]
        def after_call(self, response: Any, case: Any) -> None:
            super().after_call(response, case)
            steps.append(f"{case.method} {case.formatted_path} -> {response.status_code}")

        def before_call(self, case: Any) -> None:
            _prepare(case, page, auth)

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": live_server.url, "headers": auth}

        def validate_response(self, response: Any, case: Any, *args: Any, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS, headers=auth)

    Scenario.run(
        settings=hypothesis_settings(
            max_examples=3,
            stateful_step_count=5,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
    )
    from sessions.models import Action, BrowserSession

    # The links were followed: sessions were made and acted on by the scenarios themselves.
    assert BrowserSession.objects.filter(account=client.account).exists(), steps
    assert Action.objects.filter(account=client.account).exists(), steps
