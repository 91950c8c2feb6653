"""A Celery task message as one Redis command, for a sender that has other commands to send with it.

`app.send_task` publishes through kombu on the broker's own connections: a Redis round trip of
its own for every message. An accepted action also appends its `action_request` event first
(sessions/events.py), so every action paid two round trips where one does (on these VMs a round
trip is a wake-up of Redis and of the sending thread: 0.25-0.3 ms idle, more under load;
docs/benchmarks.md, "Wave 4 session 5"). The broker is the Redis of REDIS_URL
(settings.CELERY_BROKER_URL), so the message can go in the same pipeline as the event.

`task_message_command` adds to a pipeline the LPUSH that kombu's Redis transport sends for
`app.send_task(name, args=args, queue=queue)` (message protocol 2, the task serializer, the
anonymous exchange whose routing key is the queue, priority 0): the same envelope, headers and
body, built by Celery's own `create_task_message` and kombu's serializer.
tests/project/test_task_messages.py compares it with a message Celery sent itself, field by
field, so a Celery or kombu upgrade that changes the format fails there and not in production.
What it leaves out, as unused here: the `before/after_task_publish` signals, a result backend's
`on_task_call` (results are ignored: CELERY_TASK_IGNORE_RESULT) and the producer's queue declare
(a worker declares the queues it consumes).
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

from kombu.serialization import dumps as serialize
from kombu.utils.json import dumps as envelope_dumps
from redis.client import Pipeline

from project.celery import app


def task_message_command(pipe: Pipeline, name: str, args: tuple[Any, ...], *, queue: str) -> str:
    """Add the LPUSH of task `name(*args)` for `queue` to `pipe` (one reply); return the task id."""
    task_id = str(uuid.uuid4())
    headers, properties, body, _ = app.amqp.create_task_message(
        task_id,
        name,
        args,
        {},
        reply_to=app.thread_oid,
        create_sent_event=False,
        ignore_result=None,
    )
    content_type, content_encoding, payload = serialize(body, serializer=app.conf.task_serializer)
    data: bytes = payload.encode(content_encoding or "utf-8") if isinstance(payload, str) else payload
    message = {
        "body": base64.b64encode(data).decode("ascii"),
        "content-encoding": content_encoding,
        "content-type": content_type,
        "headers": headers,
        "properties": {
            **properties,
            "delivery_mode": 2,  # persistent, kombu's default
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    pipe.lpush(queue, envelope_dumps(message))
    return task_id
