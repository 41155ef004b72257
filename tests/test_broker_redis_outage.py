"""The Redis broker across an outage, on a PRIVATE redis-server this test kills and restarts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from synthia_rt.broker import BrokerUnavailable, Event, Position, keys
from synthia_rt.broker.redis import RedisBroker
from synthia_rt.kv.redis import RedisKV
from synthia_rt.settings import Settings
from tests import broker_support
from tests.redis_server import RedisServer, private_redis

DEADLINE = 8.0  # bounds a failing wait (reconnect backoff included); nothing measures speed


class Recorder(broker_support.Recorder):
    deadline = DEADLINE


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    async with private_redis(tmp_path / "redis") as running:
        yield running


@pytest.fixture
async def node(server: RedisServer, namespace: str) -> AsyncIterator[tuple[RedisBroker, Recorder]]:
    broker = RedisBroker(server.url, Settings(redis_namespace=namespace), "outage-node")
    seen = Recorder()
    seen.attach(broker)
    await broker.start()
    try:
        yield broker, seen
    finally:
        await broker.stop()


async def numsub(server: RedisServer, channel_key: bytes) -> int:
    client = aioredis.Redis.from_url(server.url)
    try:
        [(_, count)] = await client.pubsub_numsub(channel_key)
        return int(count)
    finally:
        await client.aclose()


async def test_subscriptions_survive_a_redis_restart(
    server: RedisServer, node: tuple[RedisBroker, Recorder], namespace: str
) -> None:
    broker, seen = node
    await broker.subscribe("c")
    before = await broker.publish("c", {"event": "before"})
    await seen.wait_until(lambda: len(seen.events) == 1)

    await server.kill()
    with pytest.raises(BrokerUnavailable):
        await broker.publish("c", {"event": "during"})
    with pytest.raises(BrokerUnavailable):
        await broker.signal("c", {"kind": "revoke"})
    with pytest.raises(BrokerUnavailable):
        await broker.history("c", None)
    assert not await broker.healthy()
    # A new subscription during the outage fails and leaves nothing behind.
    broker.listener.subscribe_timeout = 0.3
    with pytest.raises(BrokerUnavailable):
        await broker.subscribe("new")
    assert seen.resubscribed == []

    await server.start()  # same port, empty: the history is gone
    await seen.wait_until(lambda: seen.resubscribed == [["c"]])
    assert broker.listener.channels() == ["c"]
    assert await numsub(server, keys.pubsub_channel(namespace, 0, "c")) == 1
    assert await numsub(server, keys.pubsub_channel(namespace, 0, "new")) == 0

    after = await broker.publish("c", {"event": "after"})
    assert (after.offset, after.epoch != before.epoch) == (1, True)  # new epoch: history lost
    await seen.wait_until(lambda: len(seen.events) == 2)
    assert seen.events[1] == after
    lost = await broker.history("c", Position(before.offset, before.epoch))
    assert not lost.recovered
    assert await broker.healthy()


async def test_a_silent_connection_is_detected_and_replaced(
    server: RedisServer, node: tuple[RedisBroker, Recorder]
) -> None:
    broker, seen = node
    listener = broker.listener
    listener.poll_interval, listener.ping_after, listener.pong_timeout = 0.05, 0.1, 0.3
    await broker.subscribe("c")
    admin = aioredis.Redis.from_url(server.url)
    try:
        # The server stops answering (as a half-open TCP link would) but nothing is closed:
        # only the listener's own PING can tell.
        await admin.client_pause(1000, all=True)
    finally:
        await admin.aclose()
    await seen.wait_until(lambda: seen.resubscribed == [["c"]])
    sent = await broker.publish("c", {"event": "after-pause"})
    await seen.wait_until(lambda: seen.events == [sent])


async def test_a_failed_subscribe_leaves_no_subscription(
    server: RedisServer, node: tuple[RedisBroker, Recorder], namespace: str
) -> None:
    broker, _ = node
    broker.listener.subscribe_timeout = 0.2
    admin = aioredis.Redis.from_url(server.url)
    try:
        await admin.client_pause(600, all=True)  # our SUBSCRIBEs wait unanswered meanwhile
    finally:
        await admin.aclose()
    # Not confirmed in time: BrokerUnavailable.
    with pytest.raises(BrokerUnavailable):
        await broker.subscribe("timed-out")
    # Cancelled while waiting (the hub's caller went away).
    pending = asyncio.create_task(broker.subscribe("cancelled"))
    while "cancelled" not in broker.listener.channels():  # noqa: ASYNC110 - a few loop turns
        await asyncio.sleep(0)
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    assert broker.listener.channels() == []
    # Redis runs one connection's commands in order: once this later subscribe is confirmed
    # (after the pause), the SUBSCRIBE/UNSUBSCRIBE pairs before it have been applied.
    broker.listener.subscribe_timeout = 5.0
    await broker.subscribe("sentinel")
    for channel in ("timed-out", "cancelled"):
        assert await numsub(server, keys.pubsub_channel(namespace, 0, channel)) == 0
    assert await numsub(server, keys.pubsub_channel(namespace, 0, "sentinel")) == 1


async def test_commands_right_after_a_restart_use_fresh_connections(
    server: RedisServer, node: tuple[RedisBroker, Recorder], namespace: str
) -> None:
    """Connections pooled before a restart are replaced at checkout, not used once more and
    failed with "Connection closed by server" (issue 10.2): the first command after Redis is
    back succeeds, the non-idempotent ones included (publish script, KV incr)."""
    broker, _ = node
    kv = RedisKV(server.url, namespace)
    await kv.start()
    try:
        channels = [f"c{i}" for i in range(20)]
        # Fill both pools with connections that will be stale (concurrent: one each).
        await asyncio.gather(*(broker.publish(c, {"event": "before"}) for c in channels))
        await asyncio.gather(*(kv.incr(f"n{i}") for i in range(20)))

        await server.kill()
        await server.start()

        published = await asyncio.gather(
            *(broker.publish(c, {"event": "after"}) for c in channels), return_exceptions=True
        )
        read = await asyncio.gather(
            *(broker.history(c, None) for c in channels), return_exceptions=True
        )
        counted = await asyncio.gather(
            *(kv.incr(f"n{i}") for i in range(20)), return_exceptions=True
        )
        failed = [r for r in (*published, *read, *counted) if isinstance(r, BaseException)]
        assert failed == []
        assert [e.offset for e in published if isinstance(e, Event)] == [1] * len(channels)
        assert counted == [1] * 20  # each ran exactly once in the new (empty) Redis
    finally:
        await kv.close()
