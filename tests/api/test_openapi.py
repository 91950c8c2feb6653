"""The OpenAPI description: valid, public, complete (every route), and the SDK's paths in it."""

from __future__ import annotations

import inspect
import re

import pytest
import yaml
from django.contrib.staticfiles import finders
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.validation import validate_schema
from tzafon.resources.computers import computers as sdk_computers
from tzafon.resources.computers import exec as sdk_exec
from tzafon.resources.computers import tabs as sdk_tabs

from accounts.lockout import lockout_retry_after
from project.redis import get_redis
from sessions.action_specs import ENDPOINT_TYPES

# Not part of the public API (the admin, the customer console, the favicon), or the description itself.
NOT_DESCRIBED = ("admin/", "v1/openapi.json", "v1/openapi.yaml", "v1/docs", "console", "favicon.ico")
# Stripe's webhook (billing/payment_views.py): called by Stripe, not part of the tenants' API.
NOT_DESCRIBED += ("billing/stripe/webhook",)


ADDRESS = "127.0.0.9"  # this module's own, so other tests' failed keys do not count here


@pytest.fixture
def rf_client() -> Client:
    get_redis().delete(f"bf:authfail:{ADDRESS}")
    return Client(REMOTE_ADDR=ADDRESS)


@pytest.fixture(scope="module")
def schema() -> dict:
    response = Client().get("/v1/openapi.json")
    assert response.status_code == 200
    return response.json()


def test_schema_validates_against_the_openapi_3_metaschema(schema):
    assert schema["openapi"].startswith("3.")
    validate_schema(schema)  # raises on any violation


def test_schema_and_docs_need_no_key_and_bad_keys_do_not_lock_anyone_out(rf_client, settings):
    # A lockout after 2 failures, and each path asked 3 times with a bad key: any one path that
    # counted would lock the address out (each schema render costs about a second).
    settings.AUTH_LOCKOUT_MAX_FAILURES = 2
    for _ in range(3):
        for path in ("/v1/openapi.json", "/v1/openapi.yaml", "/v1/docs"):
            response = rf_client.get(path, HTTP_AUTHORIZATION="Bearer wrong")
            assert response.status_code == 200, path
    assert lockout_retry_after(ADDRESS) is None
    yaml_schema = yaml.safe_load(rf_client.get("/v1/openapi.yaml").content)
    assert "/v1/computers" in yaml_schema["paths"]


def test_docs_page_loads_swagger_ui_from_our_own_static_files(rf_client):
    html = rf_client.get("/v1/docs").content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    swagger = [a for a in assets if "swagger-ui" in a]
    assert swagger, html
    for asset in swagger:
        assert asset.startswith("/static/drf_spectacular_sidecar/"), asset  # no CDN
        assert finders.find(asset.removeprefix("/static/")), asset
    assert "/v1/openapi.json" in html


def _routes(patterns=None, prefix: str = "") -> list[str]:
    out = []
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            out += _routes(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            out.append(prefix + str(entry.pattern))
    return out


def _templates() -> set[str]:
    """Every routed path as an OpenAPI path template; the action route as its endpoints."""
    templates = set()
    for route in _routes():
        if route.startswith(NOT_DESCRIBED):
            continue
        path = "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)
        if path.endswith("/{endpoint}"):
            templates |= {path.replace("{endpoint}", name) for name in ENDPOINT_TYPES}
        else:
            templates.add(path)
    return templates


def test_every_route_is_in_the_schema_and_nothing_else(schema):
    routed = _templates()
    assert len(routed) > 70  # both mounts of the Computer API are walked
    assert routed - set(schema["paths"]) == set()
    assert set(schema["paths"]) - routed == set()


def test_every_operation_has_errors_auth_and_a_described_success(schema):
    security_schemes = schema["components"]["securitySchemes"]
    assert security_schemes["ApiKey"] == {**security_schemes["ApiKey"], "type": "http", "scheme": "bearer"}
    for path, item in schema["paths"].items():
        if path in PROBES:
            continue  # not API-key endpoints: checked below
        for method, operation in item.items():
            codes = set(operation["responses"])
            assert any(code.startswith("2") for code in codes) or codes >= {"501"}, (path, method)
            assert "404" in codes or path in ("/computers", "/v1/computers") or not path.count("{"), (
                path,
                method,
            )
            error = operation["responses"].get("404") or operation["responses"].get("400")
            assert error["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorBody"
            }
            if path.startswith(("/v1/screenshots/", "/v1/job-screenshots/", "/v1/live/", "/v1/replay/")):
                assert operation.get("security") in (None, [], [{}])  # the URL is the credential
            else:
                assert {"ApiKey": []} in operation["security"], (path, method)
                assert "401" in codes and "429" in codes, (path, method)


PROBES = ("/healthz", "/readyz", "/metrics")


def test_probes_and_metrics_are_described_with_their_own_access_rules(schema):
    assert schema["paths"]["/healthz"]["get"]["security"] == []
    assert set(schema["paths"]["/readyz"]["get"]["responses"]) == {"200", "503"}
    metrics = schema["paths"]["/metrics"]["get"]
    assert {"401", "403"} <= set(metrics["responses"])
    assert "text/plain" in metrics["responses"]["200"]["content"]


def _sdk_calls() -> set[tuple[str, str]]:
    """(method, path template) of every call the SDK's computers resources make."""
    calls = set()
    for resource in (sdk_computers.ComputersResource, sdk_exec.ExecResource, sdk_tabs.TabsResource):
        source = inspect.getsource(resource)
        for method, path in re.findall(
            r'self\._(get|post|delete|put|patch)\(\s*path_template\("([^"]+)"', source
        ):
            calls.add((method, path.replace("{id}", "{session_id}")))
        calls |= {
            (method, path)
            for method, path in re.findall(r'self\._(get|post|delete|put|patch)\(\s*"(/[^"]+)"', source)
        }
    return calls


def test_the_sdks_paths_and_methods_are_in_the_schema_under_both_mounts(schema):
    calls = _sdk_calls()
    assert len(calls) >= 30, calls  # the regexes still read the SDK's source
    for method, path in calls:
        for mounted in (path, "/v1" + path):
            assert method in schema["paths"].get(mounted, {}), (method, mounted)


def test_action_endpoints_describe_their_own_bodies(schema):
    body = schema["paths"]["/v1/computers/{session_id}/navigate"]["post"]["requestBody"]
    ref = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert "url" in schema["components"]["schemas"][ref]["required"]
    responses = schema["paths"]["/v1/computers/{session_id}/click"]["post"]["responses"]
    assert {"200", "202", "400", "401", "402", "404", "409", "410", "413", "429", "503"} <= set(responses)
    exec_ok = schema["paths"]["/computers/{session_id}/exec"]["post"]["responses"]["200"]
    assert "application/x-ndjson" in exec_ok["content"]
