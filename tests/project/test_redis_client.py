"""The process's Redis client is built once, whatever the number of threads asking for it first."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from project import redis as project_redis


@pytest.fixture
def fresh_client() -> Iterator[None]:
    project_redis.get_redis.cache_clear()  # type: ignore[attr-defined]
    yield
    project_redis.get_redis.cache_clear()  # type: ignore[attr-defined]


def test_threads_asking_at_once_share_one_client_and_its_pool(
    fresh_client: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A slow build widens the window in which other threads ask: with a plain functools.cache,
    # each of them built its own client, and every client but the cached one was dropped, closing
    # its pool under the thread that was still using it (ValueError: I/O operation on closed file).
    built: list[redis.Redis] = []
    real_from_url = redis.Redis.from_url

    def slow_from_url(*args: Any, **kwargs: Any) -> redis.Redis:
        time.sleep(0.05)
        client = real_from_url(*args, **kwargs)
        built.append(client)
        return client

    monkeypatch.setattr(redis.Redis, "from_url", slow_from_url)
    start = threading.Barrier(16)
    got: list[redis.Redis] = []

    def ask() -> None:
        start.wait()
        got.append(project_redis.get_redis())

    threads = [threading.Thread(target=ask) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(built) == 1
    assert len({id(client) for client in got}) == 1
    assert got[0].ping()
