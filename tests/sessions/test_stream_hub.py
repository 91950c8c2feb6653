"""The per-process stream hub's subscriptions (sessions/stream_hub.py), on the real Redis: a slow
viewer keeps only the latest frames (memory stays bounded), a subscription that falls too far
behind on events is told to catch up from Redis and misses none, and one reader serves many
subscriptions."""

from __future__ import annotations

import asyncio

from project.redis import get_redis
from sessions.stream_hub import EVENTS_QUEUED, FRAMES_QUEUED, Subscription, entry_id_after, stream_hub
from sessions.streams import _catch_up


def test_stream_ids_compare_as_numbers() -> None:
    assert entry_id_after("10-0", "9-5") and entry_id_after("9-10", "9-9")
    assert not entry_id_after("9-9", "9-9") and entry_id_after("1-0", "0-0")


def test_a_slow_viewer_keeps_only_the_latest_frames_and_events_overrun_to_a_catch_up() -> None:
    async def run() -> None:
        subscription = Subscription({"frames": "0-0", "events": "0-0"}, lossy=["frames"])
        subscription.overrun.clear()  # as after the first catch-up
        subscription.deliver("frames", [(f"{n}-0", {"n": n}) for n in range(1, 101)])
        assert subscription.dropped == 100 - FRAMES_QUEUED
        taken = subscription.take()
        assert [entry_id for _, entry_id, _ in taken] == [f"{n}-0" for n in range(101 - FRAMES_QUEUED, 101)]
        subscription.deliver("events", [(f"{n}-0", {}) for n in range(1, EVENTS_QUEUED + 2)])
        assert subscription.overrun == {"events"} and not subscription.pending["events"]
        assert await subscription.wait(0.01)

    asyncio.run(run())


def test_one_reader_feeds_many_subscriptions_and_a_catch_up_misses_nothing() -> None:
    key = "bf:test:hub:events"
    redis = get_redis()
    redis.delete(key)
    first = redis.xadd(key, {"event": "status", "data": "{}"}).decode()

    async def run() -> None:
        hub = stream_hub()  # the loop's hub, as the streams use it
        try:
            subs = [await hub.subscribe({key: first}) for _ in range(50)]
            for s in subs:
                s.overrun.clear()
            await asyncio.sleep(0.2)  # the reader is blocked on the key
            ids = [await hub.commands.xadd(key, {"event": "x", "data": str(n)}) for n in range(3)]
            for s in subs:
                assert await s.wait(5)
                got = [entry_id for _, entry_id, _ in s.take()]
                while len(got) < 3 and await s.wait(5):
                    got += [entry_id for _, entry_id, _ in s.take()]
                assert got == ids
            # One that fell behind reads what it missed from Redis itself, from its cursor.
            late = Subscription({key: first}, lossy=())
            assert [entry_id for entry_id, _ in await _catch_up(late, key)] == ids
            for s in subs:
                hub.unsubscribe(s)
        finally:
            await hub.close()

    asyncio.run(run())
    redis.delete(key)
