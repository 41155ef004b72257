"""Redis Cluster failover under a live sharded subscription (issue 12 C): a replica takes over
the channel's slot (CLUSTER FAILOVER), the broker re-subscribes on the new primary, reports
the channel as re-subscribed (the hub's cue to catch up), events flow again and ``since``
recovers everything published before and after."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from synthia_rt.broker import BrokerUnavailable, Position, create_broker, keys
from synthia_rt.settings import Settings
from tests.broker_support import Recorder
from tests.redis_cluster import RedisCluster

DEADLINE = 20.0  # bounds a failing wait (failover takes a few seconds); measures nothing


class Node(Recorder):
    deadline = DEADLINE


@pytest.fixture
async def own_cluster(tmp_path: Path) -> AsyncIterator[RedisCluster]:
    cluster = RedisCluster(tmp_path / "cluster")
    await asyncio.to_thread(cluster.start)
    try:
        yield cluster
    finally:
        cluster.stop()


async def _publish(broker: object, channel: str, n: int) -> None:
    """Publish, retrying while the slot has no reachable primary (mid-failover)."""
    async with asyncio.timeout(DEADLINE):
        while True:
            try:
                await broker.publish(channel, {"event": "tick", "n": n})  # type: ignore[attr-defined]
                return
            except BrokerUnavailable:
                await asyncio.sleep(0.1)


async def test_failover_under_a_live_subscription(own_cluster: RedisCluster) -> None:
    namespace = f"synthia-test-{secrets.token_hex(4)}"
    node = Node()
    broker = create_broker(own_cluster.url, Settings(redis_namespace=namespace), "n1")
    node.attach(broker)
    await broker.start()
    try:
        await broker.subscribe("c")
        for i in range(5):
            await _publish(broker, "c", i)
        await node.wait_until(lambda: len(node.events) == 5)
        start = Position(0, node.events[0].epoch)

        # The replica of the primary that owns the channel's slot takes over.
        probe = aioredis.RedisCluster(host="127.0.0.1", port=own_cluster.ports[0])
        await probe.initialize()
        slot = probe.keyslot(keys.meta_key(namespace, "c"))
        owner = probe.get_node_from_key(keys.meta_key(namespace, "c"))
        assert owner is not None
        direct = aioredis.Redis(host=owner.host, port=int(owner.port))
        replicas = await direct.execute_command(  # type: ignore[no-untyped-call]
            "CLUSTER", "REPLICAS", await direct.execute_command("CLUSTER", "MYID")  # type: ignore[no-untyped-call]
        )
        await direct.aclose()
        await probe.aclose()
        replica_port = int(replicas[0].split()[1].decode().split("@")[0].rsplit(":", 1)[1])
        replica = aioredis.Redis(host="127.0.0.1", port=replica_port)
        assert await replica.execute_command("CLUSTER", "FAILOVER")  # type: ignore[no-untyped-call]
        async with asyncio.timeout(DEADLINE):
            while (await replica.info("replication"))["role"] != "master":  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        slots = await replica.execute_command("CLUSTER", "SLOTS")  # type: ignore[no-untyped-call]
        await replica.aclose()
        assert any(s[0] <= slot <= s[1] and int(s[2][1]) == replica_port for s in slots)

        await node.wait_until(lambda: any("c" in batch for batch in node.resubscribed))
        for i in range(5, 10):
            await _publish(broker, "c", i)
        await node.wait_until(lambda: len(node.events) == 10)
        assert [e.offset for e in node.events] == list(range(1, 11))
        history = await broker.history("c", start)
        assert history.recovered and [e.offset for e in history.events] == list(range(1, 11))
    finally:
        await broker.stop()
