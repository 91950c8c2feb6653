"""project/task_messages.py builds the message Celery itself sends, field by field, and a worker
runs it (the action flows send every action this way: tests/flows)."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
from kombu.utils.json import loads

from project.celery import app
from project.redis import get_redis
from project.task_messages import task_message_command

NAME = "workers.tasks.actions_run"
# What differs between two messages by nature: ids, and the repr of the arguments.
PER_MESSAGE = {"id", "root_id", "argsrepr"}
# What Celery takes from the sending process: a sender that has the task registered (a worker, or
# this test run once a test imported workers.tasks) copies the task's time limits into the
# message; the web has not, and sends none, as task_message_command does: the worker then applies
# the task's own, the same limits.
PER_SENDER = {"timelimit"}


@pytest.fixture
def queue():
    name = f"test-task-messages-{uuid.uuid4().hex}"
    yield name
    get_redis().delete(name, f"_kombu.binding.{name}")


def _pushed(queue: str) -> dict:
    raw = get_redis().rpop(queue)
    assert raw is not None, "nothing was pushed"
    assert get_redis().llen(queue) == 0
    return loads(raw)


def test_the_message_is_celerys_own(queue):
    args = ("comp_0123456789abcdef01234567",)
    sent = app.send_task(NAME, args=args, queue=queue)
    theirs = _pushed(queue)
    pipe = get_redis().pipeline(transaction=False)
    task_id = task_message_command(pipe, NAME, args, queue=queue)
    assert pipe.execute() == [1]
    ours = _pushed(queue)

    assert list(ours) == list(theirs)  # the envelope's keys, in kombu's order
    for key in ("content-type", "content-encoding"):
        assert ours[key] == theirs[key]
    assert ours["headers"].keys() == theirs["headers"].keys()
    for key, value in theirs["headers"].items():
        if key not in PER_MESSAGE | PER_SENDER:
            assert ours["headers"][key] == value, key
    assert ours["headers"]["timelimit"] == [None, None]
    assert theirs["headers"]["id"] == sent.id and ours["headers"]["id"] == task_id
    assert ours["headers"]["root_id"] == task_id
    assert ours["headers"]["argsrepr"] == theirs["headers"]["argsrepr"]  # same args here
    assert ours["properties"].keys() == theirs["properties"].keys()
    for key, value in theirs["properties"].items():
        if key not in ("correlation_id", "delivery_tag"):
            assert ours["properties"][key] == value, key
    assert ours["properties"]["correlation_id"] == task_id
    assert ours["properties"]["delivery_tag"] != theirs["properties"]["delivery_tag"]
    assert json.loads(base64.b64decode(ours["body"])) == json.loads(base64.b64decode(theirs["body"]))


def test_each_message_has_its_own_ids(queue):
    pipe = get_redis().pipeline(transaction=False)
    first = task_message_command(pipe, NAME, ("a",), queue=queue)
    second = task_message_command(pipe, NAME, ("b",), queue=queue)
    pipe.execute()
    older, newer = _pushed_two(queue)
    assert first != second
    assert (older["headers"]["id"], newer["headers"]["id"]) == (first, second)
    assert older["properties"]["delivery_tag"] != newer["properties"]["delivery_tag"]


def _pushed_two(queue: str) -> tuple[dict, dict]:
    redis = get_redis()
    older, newer = redis.rpop(queue), redis.rpop(queue)  # LPUSH: the oldest is on the right
    return loads(older), loads(newer)
