"""Every JSON answer the tests see is checked against the OpenAPI description the server serves
(`/v1/openapi.json`), as Zulip's test client does: a response that drifts from its declaration
fails the test that saw it, in seconds, not only the schemathesis run.

`ResponseChecker.check(method, url, status, content_type, body)` raises AssertionError with the
path, status and the first validation errors. The hooks for requests and httpx (the SDK) call it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import referencing
import referencing.jsonschema


def _json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema -> JSON Schema (draft 2020-12): `nullable` becomes a null alternative,
    refs keep pointing into the document."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _json_schema(value) for key, value in node.items() if key not in ("nullable", "example")}
    if node.get("nullable"):
        return {"anyOf": [out, {"type": "null"}]}
    return out


@dataclass
class ResponseChecker:
    document: dict[str, Any]
    checked: int = 0
    _routes: list[tuple[re.Pattern[str], str]] = field(default_factory=list)
    _registry: Any = None

    def __post_init__(self) -> None:
        converted = _json_schema(self.document)
        self._converted = converted
        resource = referencing.Resource.from_contents(
            converted, default_specification=referencing.jsonschema.DRAFT202012
        )
        self._registry = referencing.Registry().with_resource("urn:openapi", resource)
        # Literal segments win over parameters: /tabs/{tab_id}/close before /{endpoint}-like ones.
        paths = sorted(converted["paths"], key=lambda p: (p.count("{"), -len(p)))
        for path in paths:
            pattern = re.escape(path)
            pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", pattern)
            self._routes.append((re.compile(pattern), path))

    def _operation(self, method: str, path: str) -> tuple[str, dict[str, Any]] | None:
        for pattern, template in self._routes:
            operation = self._converted["paths"][template].get(method.lower())
            if operation is not None and pattern.fullmatch(path):
                return template, operation
        return None

    def check(self, method: str, url: str, status: int, content_type: str, body: bytes) -> None:
        if "json" not in content_type or not body:
            return
        path = urlsplit(url).path
        if path.endswith("/openapi.json"):
            return
        found = self._operation(method, path)
        if found is None and status == 404:
            return  # no such route (tests that probe unknown paths): nothing described to drift from
        assert found is not None, (
            f"{method} {path} answered {status} but the OpenAPI description has no such operation"
        )
        template, operation = found
        responses = operation.get("responses", {})
        response = responses.get(str(status)) or responses.get("default")
        assert response is not None, (
            f"{method} {template} answered {status}, a status its OpenAPI description does not declare "
            f"({sorted(responses)}): {body[:300]!r}"
        )
        content = response.get("content", {})
        declared = content_type.split(";")[0].strip()
        media = content.get(declared) or next((v for k, v in content.items() if "json" in k), None)
        assert media is not None, f"{method} {template} {status}: {declared} answered, none declared"
        schema = media.get("schema")
        if not schema:
            return
        schema = json.loads(json.dumps(schema).replace('"$ref": "#/', '"$ref": "urn:openapi#/'))
        validator = jsonschema.Draft202012Validator(schema, registry=self._registry)
        # A JSON Lines stream: each line is one document of the declared schema.
        lines = body.splitlines() if "ndjson" in declared else [body]
        errors = sorted(
            (error for line in lines if line for error in validator.iter_errors(json.loads(line))),
            key=lambda e: list(e.absolute_path),
        )
        assert not errors, (
            f"{method} {template} {status} does not match its OpenAPI description:\n"
            + "\n".join(
                f"- at {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:300]}"
                for e in errors[:5]
            )
        )
        self.checked += 1

    def requests_hook(self) -> Callable[..., Any]:
        def hook(response: Any, *args: Any, **kwargs: Any) -> Any:
            self.check(
                response.request.method,
                response.url,
                response.status_code,
                response.headers.get("Content-Type", ""),
                response.content,
            )
            return response

        return hook

    def httpx_hook(self) -> Callable[[Any], None]:
        def hook(response: Any) -> None:
            content_type = response.headers.get("Content-Type", "")
            if "json" not in content_type or "ndjson" in content_type:
                return  # streams (the SDK's exec) are left to the caller
            response.read()
            self.check(
                response.request.method,
                str(response.request.url),
                response.status_code,
                content_type,
                response.content,
            )

        return hook
