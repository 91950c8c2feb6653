"""The probes and /metrics in the OpenAPI description (a drf-spectacular postprocessing hook):
they are plain Django views, so the generator does not see them."""

from __future__ import annotations

from typing import Any

_READY_BODY = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": ["ok"]},
        "checks": {"type": "object", "additionalProperties": True},
        "failed": {"type": "array", "items": {"type": "string"}},
        "elapsed_ms": {"type": "number"},
    },
    "additionalProperties": True,
}
# Not ready: the error body (`code: not_ready`) with the same `checks` and `failed`.
_NOT_READY_BODY = {
    "allOf": [
        {"$ref": "#/components/schemas/ErrorBody"},
        {"type": "object", "properties": {"checks": {"type": "object"}, "failed": {"type": "array"}}},
    ]
}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def describe_probes(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    error = {"$ref": "#/components/schemas/ErrorBody"}
    paths = result.setdefault("paths", {})
    paths["/healthz"] = {
        "get": {
            "operationId": "healthz",
            "tags": ["operations"],
            "summary": "Liveness: the process answers (no dependency checks)",
            "security": [],
            "responses": {
                "200": _json("Up.", {"type": "object", "properties": {"status": {"type": "string"}}})
            },
        }
    }
    paths["/readyz"] = {
        "get": {
            "operationId": "readyz",
            "tags": ["operations"],
            "summary": "Readiness: PostgreSQL, Redis and a recent worker heartbeat",
            "description": (
                'Anyone gets `{"status": "ok"}` or a 503 `not_ready`. `checks`, `failed` and'
                " `elapsed_ms` come only with the metrics credential (METRICS_TOKEN as a Bearer"
                " token, or an address in METRICS_ALLOW_CIDRS)."
            ),
            "security": [],
            "responses": {
                "200": _json("Ready.", _READY_BODY),
                "503": _json("Not ready; `failed` names what is not.", _NOT_READY_BODY),
            },
        }
    }
    paths["/metrics"] = {
        "get": {
            "operationId": "metrics",
            "tags": ["operations"],
            "summary": "Prometheus metrics (METRICS_TOKEN as a Bearer token, or METRICS_ALLOW_CIDRS)",
            "security": [{"ApiKey": []}, {}],
            "responses": {
                "200": {
                    "description": "Prometheus text format.",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                "401": _json("No token and not an allowed address.", error),
                "403": _json("A wrong token.", error),
                "503": _json("PostgreSQL did not answer.", error),
            },
        }
    }
    return result
