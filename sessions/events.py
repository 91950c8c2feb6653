"""A session's life as events, for GET /computers/{id}/events (docs/streams.md).

One Redis stream per session (`bf:events:<session id>`), capped at SESSION_EVENTS_MAX_EVENTS
entries and kept SESSION_EVENTS_RETENTION_SECONDS after the last one. The code that changes a
session or an action appends its event after the change is committed, so a reader never sees
an event for a change that was rolled back; the stream's entry ids are the SSE ids, so a client
that reconnects with Last-Event-ID gets what it missed, as long as it is still retained.

An event that cannot be written (Redis briefly away) is logged and dropped: watching is a view
of the session, never a reason for a click or a stop to fail.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from redis.client import Pipeline
from redis.exceptions import RedisError

from project.completion import completion_commands
from project.fields import iso
from project.redis import get_redis

logger = logging.getLogger(__name__)

# SSE event names.
ACTION_REQUEST = "action_request"
ACTION_RESPONSE = "action_response"
STATUS = "status"

# What a finished action's `status` says, as in its ActionResult.
_RESULT_STATUS = {"succeeded": "success", "failed": "error", "errored": "error", "cancelled": "error"}


def events_key(session_id: str) -> str:
    return f"bf:events:{session_id}"


Entry = tuple[str, str, dict[str, Any]]  # (session id, event name, data)


def _commands(pipe: Pipeline, entries: list[Entry]) -> None:
    for session_id, event, data in entries:
        key = events_key(session_id)
        pipe.xadd(
            key,
            {"event": event, "data": json.dumps(data, separators=(",", ":"))},
            maxlen=settings.SESSION_EVENTS_MAX_EVENTS,
            approximate=True,
        )
        pipe.expire(key, settings.SESSION_EVENTS_RETENTION_SECONDS)


def _append(entries: list[Entry]) -> None:
    try:
        pipe = get_redis().pipeline(transaction=False)
        _commands(pipe, entries)
        pipe.execute()
    except RedisError as exc:
        logger.warning("session events not written (%r): %s", exc, [e[:2] for e in entries])


def session_events_publish_then(entries: list[Entry], tail: Callable[[Pipeline], object]) -> None:
    """Append `entries`, then the commands `tail` adds to the pipeline, in one Redis round trip
    (each round trip is a wake-up of Redis and of this thread: on a busy host ~1 ms, measured in
    docs/benchmarks.md, "Commits and round trips"). Outside a transaction only: the entries are
    for changes committed already. The events go first, so a watcher sees them before what the
    tail causes (a waiter's answer, a worker's run); an event that cannot be written is logged,
    as in `_append`, and a tail's command that fails raises."""
    pipe = get_redis().pipeline(transaction=False)
    _commands(pipe, entries)
    tail(pipe)
    replies = pipe.execute(raise_on_error=False)
    for reply in replies[2 * len(entries) :]:
        if isinstance(reply, Exception):
            raise reply
    failed = [reply for reply in replies[: 2 * len(entries)] if isinstance(reply, Exception)]
    if failed:
        logger.warning("session events not written (%r): %s", failed[0], [e[:2] for e in entries])


def session_events_publish_with_completion(
    entries: list[Entry], event: str, payload: dict[str, Any] | None
) -> None:
    """Append `entries`, then send the completion signal `event`, in one Redis round trip (as
    `session_events_publish_then`): a signal that cannot be sent raises, as `completion_publish`
    does."""
    session_events_publish_then(entries, lambda pipe: completion_commands(pipe, event, payload))


def session_events_publish(entries: list[tuple[str, str, dict[str, Any]]]) -> None:
    """Append (session id, event name, data) entries once the current transaction commits (at
    once outside one)."""
    if entries:
        transaction.on_commit(lambda: _append(entries))


def session_status_event(
    *, session_id: str, status: str, ended_reason: str = "", at: datetime | None = None
) -> tuple[str, str, dict[str, Any]]:
    data: dict[str, Any] = {
        "session_id": session_id,
        "status": status,
        "timestamp": iso(at or timezone.now()),
    }
    if ended_reason:
        data["ended_reason"] = ended_reason
    return session_id, STATUS, data


def session_status_publish(
    *, session_id: str, status: str, ended_reason: str = "", at: datetime | None = None
) -> None:
    session_events_publish(
        [session_status_event(session_id=session_id, status=status, ended_reason=ended_reason, at=at)]
    )


def action_requested_event(
    *, session_id: str, action_id: str, action_type: str, created_at: datetime, client_request_id: str
) -> Entry:
    data: dict[str, Any] = {
        "request_id": action_id,
        "action_id": action_id,
        "type": action_type,
        "status": "queued",
        "created_at": iso(created_at),
    }
    if client_request_id:
        data["client_request_id"] = client_request_id
    return session_id, ACTION_REQUEST, data


def action_finished_event(
    *,
    session_id: str,
    action_id: str,
    action_type: str,
    action_status: str,
    error: str,
    code: str | None,
    created_at: datetime | None,
    started_at: datetime | None,
    finished_at: datetime,
) -> Entry:
    data: dict[str, Any] = {
        "request_id": action_id,
        "action_id": action_id,
        "type": action_type,
        "status": _RESULT_STATUS.get(action_status, "error"),
        "action_status": action_status,
        "error_message": error or None,
        "created_at": iso(created_at),
        "started_at": iso(started_at),
        "finished_at": iso(finished_at),
        "queued_ms": _ms(created_at, started_at),
        "duration_ms": _ms(started_at, finished_at),
    }
    if code:
        data["code"] = code
    return session_id, ACTION_RESPONSE, data


def _ms(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return max(0, int((end - start).total_seconds() * 1000))
