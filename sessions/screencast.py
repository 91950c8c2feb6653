"""Who watches which session's screencast, and where its frames go: the Redis keys shared by the
web side (sessions/streams.py) and the caster on the browser's host (workers/screencast.py).

- `bf:cast:watchers:<session>`: a sorted set of open screencast streams, scored by when each
  last said it was alive. A session is watched while one score is younger than
  `WATCHER_TTL_SECONDS`; nobody watching, nothing is cast.
- `bf:cast:host:<host>`: the sessions of that host somebody asked to watch (the caster polls it).
- `bf:cast:frames:<session>`: the latest frames (a Redis stream of a few entries), which the
  web side's streams read with a blocking XREAD.
"""

from __future__ import annotations

import time

from project.redis import get_redis

WATCHER_TTL_SECONDS = 10
# Frames kept for late readers: a stream reads the latest one first, then new ones.
FRAMES_KEPT = 4
FRAMES_TTL_SECONDS = 30


def watchers_key(session_id: str) -> str:
    return f"bf:cast:watchers:{session_id}"


def host_watch_key(host: str) -> str:
    return f"bf:cast:host:{host}"


def frames_key(session_id: str) -> str:
    return f"bf:cast:frames:{session_id}"


def screencast_watch(*, session_id: str, host: str, token: str) -> None:
    """Register an open screencast stream; the host's caster starts casting within a poll."""
    pipe = get_redis().pipeline(transaction=False)
    pipe.zadd(watchers_key(session_id), {token: time.time()})
    pipe.expire(watchers_key(session_id), WATCHER_TTL_SECONDS * 3)
    pipe.sadd(host_watch_key(host), session_id)
    pipe.execute()


def screencast_watched(*, session_id: str) -> bool:
    """Whether an open stream said it was alive within WATCHER_TTL_SECONDS."""
    return bool(get_redis().zcount(watchers_key(session_id), time.time() - WATCHER_TTL_SECONDS, "+inf"))
