"""A session create as the tzafon SDK sends it: a 503 (e.g. `browser_start_failed` on a machine
whose CPU is saturated by other work) is retried after its Retry-After, a few times."""

from __future__ import annotations

import time
from typing import Any


def create_session(client: Any, body: dict[str, Any] | None = None, *, attempts: int = 3) -> str:
    for _ in range(attempts - 1):
        response = client.post("/v1/computers", body or {})
        if response.status_code != 503:
            break
        time.sleep(float(response.headers.get("Retry-After", "1")))  # what the SDK waits
    else:
        response = client.post("/v1/computers", body or {})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])
