"""Redis Cluster failover under a live sharded subscription (issue 12 C): a replica takes over
the channel's slot (CLUSTER FAILOVER), the broker re-subscribes on the new primary, reports
the channel as re-subscribed (the hub's cue to catch up), events flow again and ``since``
recovers everything published before and after."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.connection import Connection
from redis.crc import key_slot
from redis.exceptions import MovedError, SlotNotCoveredError, TryAgainError

from synthia_rt.broker import BrokerUnavailable, Position, create_broker, keys
from synthia_rt.broker.redis import RedisBroker
from synthia_rt.broker.redis_sharded import ShardedListener
from synthia_rt.errors import AppError, ErrorCode
from synthia_rt.kv import create_kv
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
            "CLUSTER",
            "REPLICAS",
            await direct.execute_command("CLUSTER", "MYID"),  # type: ignore[no-untyped-call]
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


async def test_a_killed_primary_is_replaced_under_a_live_subscription(
    own_cluster: RedisCluster,
) -> None:
    """SIGKILL the process of the primary that owns a live channel's slot (issue 12 item 1):
    publishes and KV commands during the election fail as ``unavailable`` only (never another
    error), the broker re-subscribes on the promoted replica, events flow again, ``since``
    recovers what was replicated, and the KV works again."""
    namespace = f"synthia-test-{secrets.token_hex(4)}"
    node = Node()
    broker = create_broker(own_cluster.url, Settings(redis_namespace=namespace), "n1")
    node.attach(broker)
    kv = create_kv(own_cluster.url, namespace)
    await broker.start()
    await kv.start()
    try:
        await broker.subscribe("c")
        for i in range(5):
            await _publish(broker, "c", i)
        await node.wait_until(lambda: len(node.events) == 5)
        start = Position(0, node.events[0].epoch)
        # A KV key on the same primary (its hash tag shares the channel's slot).
        kv_key = "{ch:c}:kv"
        await kv.set(kv_key, b"before")
        # Replication is asynchronous: wait until the replica has what the primary has.
        primary = own_cluster.owner(keys.meta_key(namespace, "c"))
        await asyncio.to_thread(_wait_replicated, primary)

        loop = asyncio.get_running_loop()
        own_cluster.kill(primary)
        killed = loop.time()
        publish_refused = kv_refused = 0

        async def publish_until_ok() -> float:
            nonlocal publish_refused
            while True:
                try:
                    await broker.publish("c", {"event": "tick", "n": 5})
                    return loop.time()
                except BrokerUnavailable:  # anything else fails the test
                    publish_refused += 1
                    await asyncio.sleep(0.05)

        async def kv_until_ok() -> float:
            nonlocal kv_refused
            while True:
                try:
                    assert await kv.get(kv_key) == b"before"
                    await kv.set(kv_key, b"before")
                    return loop.time()
                except AppError as exc:
                    assert exc.code is ErrorCode.UNAVAILABLE
                    kv_refused += 1
                    await asyncio.sleep(0.05)

        async with asyncio.timeout(DEADLINE):
            first_ok, kv_ok = await asyncio.gather(publish_until_ok(), kv_until_ok())
        # Re-subscribed on the promoted replica: the hub's cue to catch up from history (a
        # publish between the promotion and this point reached no live subscriber).
        await node.wait_until(lambda: any("c" in batch for batch in node.resubscribed))
        resubscribed = loop.time()
        # The killed node's pub/sub connection is closed, not retried against it forever.
        assert isinstance(broker, RedisBroker)
        assert isinstance(broker.listener, ShardedListener)
        assert f"127.0.0.1:{primary}" not in broker.listener.nodes()
        for i in range(6, 10):
            await broker.publish("c", {"event": "tick", "n": i})
        await node.wait_until(lambda: [e.offset for e in node.events][-4:] == [7, 8, 9, 10])
        print(
            f"\nprimary killed: first publish ok after {first_ok - killed:.2f} s "
            f"({publish_refused} answered unavailable), re-subscribed after "
            f"{resubscribed - killed:.2f} s, kv get+set ok after {kv_ok - killed:.2f} s "
            f"({kv_refused} unavailable)"
        )
        assert [e.offset for e in node.events if e.offset != 6] == [1, 2, 3, 4, 5, 7, 8, 9, 10]
        history = await broker.history("c", start)
        assert history.recovered and [e.offset for e in history.events] == list(range(1, 11))
        assert own_cluster.owner(keys.meta_key(namespace, "c")) != primary

        # The killed process comes back as a replica of its successor; nothing changes.
        await asyncio.to_thread(own_cluster.restart, primary)
        await broker.publish("c", {"event": "tick", "n": 10})
        await node.wait_until(lambda: node.events[-1].offset == 11)
    finally:
        await kv.close()
        await broker.stop()


def _wait_replicated(primary: int) -> None:
    client = redis.Redis(port=primary)
    try:
        assert client.execute_command("WAIT", 1, 5000) >= 1  # type: ignore[no-untyped-call]
    finally:
        client.close()


async def test_a_publish_whose_reply_was_lost_is_not_sent_again(
    redis_cluster: RedisCluster, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection dies after the publish script was written (the primary ran it): the
    caller gets ``BrokerUnavailable`` and the event exists once.  redis-py's cluster retry
    used to send it again: a second event with the next offset."""
    broker = create_broker(redis_cluster.url, Settings(redis_namespace=namespace), "n1")
    Node().attach(broker)
    await broker.start()
    try:
        await broker.publish("c", {"event": "tick"})  # loads the script on the node
        armed = True
        read = Connection.read_response

        async def lose_reply(self: Connection, *args: Any, **kwargs: Any) -> Any:
            nonlocal armed
            if not (armed and str(self.client_name).endswith(":cmd")):
                return await read(self, *args, **kwargs)
            armed = False
            await read(self, *args, **kwargs)  # the primary ran it...
            raise redis.ConnectionError("Connection closed by server.")  # ...the reply is lost

        monkeypatch.setattr(Connection, "read_response", lose_reply)
        with pytest.raises(BrokerUnavailable):
            await broker.publish("c", {"event": "tick"})
        monkeypatch.undo()
        assert (await broker.position("c")).offset == 2
    finally:
        await broker.stop()


@pytest.mark.parametrize("refusal", ["TRYAGAIN", "MOVED"])
async def test_cluster_refusals_are_unavailable(
    redis_cluster: RedisCluster, namespace: str, monkeypatch: pytest.MonkeyPatch, refusal: str
) -> None:
    """A node that keeps answering TRYAGAIN (a slot mid-migration) or MOVED to itself (a
    redirect storm): the KV answers ``unavailable`` after a few backed-off tries, never a
    redis-py ClusterError (a 500); the broker raises ``BrokerUnavailable``."""
    kv = create_kv(redis_cluster.url, namespace)
    broker = create_broker(redis_cluster.url, Settings(redis_namespace=namespace), "n1")
    Node().attach(broker)
    await kv.start()
    await broker.start()
    calls = 0

    async def refuse(self: ClusterNode, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if refusal == "TRYAGAIN":
            raise TryAgainError("Multiple keys request during rehashing of slot")
        raise MovedError(f"{key_slot(str(args[1]).encode())} {self.host}:{self.port}")

    try:
        monkeypatch.setattr(ClusterNode, "execute_command", refuse)
        async with asyncio.timeout(DEADLINE):
            with pytest.raises(AppError) as refused:
                await kv.get("k")
            assert refused.value.code is ErrorCode.UNAVAILABLE
            with pytest.raises(BrokerUnavailable):
                await broker.publish("c", {"event": "tick"})
        assert calls > 1  # tried again: nothing had run
        monkeypatch.undo()
        assert await kv.get("k") is None
    finally:
        await broker.stop()
        await kv.close()


async def test_subscribing_to_an_uncovered_slot_is_unavailable(
    redis_cluster: RedisCluster, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mid-failover the slot map can lack the channel's slot: ``subscribe`` then raises
    ``BrokerUnavailable`` (the socket's ``unavailable``), not redis-py's SlotNotCoveredError."""
    broker = create_broker(redis_cluster.url, Settings(redis_namespace=namespace), "n1")
    Node().attach(broker)
    await broker.start()
    try:
        assert isinstance(broker, RedisBroker)
        cluster = broker.listener._cluster  # type: ignore[union-attr]

        def uncovered(key: str, replica: bool = False) -> None:
            raise SlotNotCoveredError(f'Slot "{key_slot(key.encode())}" is not covered')

        monkeypatch.setattr(cluster, "get_node_from_key", uncovered)
        with pytest.raises(BrokerUnavailable):
            await broker.subscribe("c")
        monkeypatch.undo()
        await broker.subscribe("c")
    finally:
        await broker.stop()


async def test_reconnected_shard_listeners_resubscribe_channels_of_many_slots(
    redis_cluster: RedisCluster,
) -> None:
    """A shard's pub/sub connection that drops is re-opened and re-subscribes every channel it
    held. Redis refuses an SSUBSCRIBE naming channels of two slots (CROSSSLOT), so channels
    are re-subscribed per slot; before that, a reconnect lost all but single-slot shards."""
    namespace = f"synthia-test-{secrets.token_hex(4)}"
    node = Node()
    broker = create_broker(redis_cluster.url, Settings(redis_namespace=namespace), "n1")
    node.attach(broker)
    await broker.start()
    channels = [f"c{i}" for i in range(24)]
    try:
        await asyncio.gather(*(broker.subscribe(c) for c in channels))  # one write per shard
        slots = {key_slot(keys.meta_key(namespace, c).encode()) for c in channels}
        assert len(slots) > 3  # several slots per shard: the case a single SSUBSCRIBE breaks
        for port in redis_cluster.ports:
            direct = aioredis.Redis(host="127.0.0.1", port=port)
            await direct.execute_command("CLIENT", "KILL", "TYPE", "pubsub")  # type: ignore[no-untyped-call]
            await direct.aclose()
        await node.wait_until(lambda: sum(len(b) for b in node.resubscribed) >= len(channels))
        for n, channel in enumerate(channels):
            await _publish(broker, channel, n)
        await node.wait_until(lambda: len(node.events) == len(channels))
        assert sorted(e.channel for e in node.events) == sorted(channels)
    finally:
        await broker.stop()
