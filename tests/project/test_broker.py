"""The broker transport's patches (project/broker.py): one Redis client per channel for what
kombu sends, instead of a new client (and its callback table) per command."""

from __future__ import annotations

import uuid

import redis
from kombu.transport import redis as kombu_redis

from project.celery import app
from project.redis import get_redis


def test_sends_reuse_one_client_per_channel_and_every_message_arrives(monkeypatch):
    queue = f"test.broker.{uuid.uuid4().hex}"
    made = []
    real_init = redis.Redis.__init__

    def counting_init(self, *args, **kwargs):
        made.append(self)
        real_init(self, *args, **kwargs)

    try:
        app.send_task("workers.tasks.actions_run", args=("comp_warmup",), queue=queue)  # channel, pool
        monkeypatch.setattr(redis.Redis, "__init__", counting_init)
        for n in range(20):
            app.send_task("workers.tasks.actions_run", args=(f"comp_{n}",), queue=queue)
        assert len(made) == 0, f"{len(made)} Redis clients made for 20 messages"
        assert get_redis().llen(queue) == 21

        # A channel whose pool was replaced (kombu does so after a reconnect) gets a new client on
        # the new pool: never a client bound to the old one.
        with app.connection_for_write() as connection:
            channel = connection.default_channel
            old = channel._create_client()
            channel._pool = None
            new = channel._create_client()
            assert new is not old and new.connection_pool is channel.pool
            assert channel._create_client() is new
            assert channel._create_client(asynchronous=True) is not new  # the consumer's own
    finally:
        get_redis().delete(queue)


def test_the_patch_is_applied_once():
    create = kombu_redis.Channel._create_client
    from project.broker import patch_kombu_redis_transport

    patch_kombu_redis_transport()
    assert kombu_redis.Channel._create_client is create


def test_celery_reads_every_celery_setting_from_the_snapshot():
    """project/celery_config.py copies the CELERY_* settings for Celery: each one must reach the
    app under Celery's own name (CELERY_TASK_ROUTES -> task_routes), none lost on the way."""
    from django.conf import settings

    names = [name for name in dir(settings) if name.startswith("CELERY_")]
    assert "CELERY_TASK_ROUTES" in names and len(names) >= 10
    for name in names:
        assert app.conf[name.removeprefix("CELERY_").lower()] == getattr(settings, name), name
