"""The broker seam: one scenario suite against Redis and the in-process broker, plus the
Redis-only guarantees (several nodes, one pub/sub connection, Redis-level subscriptions)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from synthia_rt.broker import Broker, Event, Position, Signal, create_broker, keys
from synthia_rt.broker.memory import MemoryBroker
from synthia_rt.settings import Settings
from tests.broker_support import Recorder
from tests.conftest import REDIS_URL, WITH_CLUSTER, backend_url

DEADLINE = 5.0  # bounds a failing wait; nothing measures speed


@dataclass
class Node(Recorder):
    """A broker plus what its handlers received; ``wait_until`` wakes on every delivery."""

    deadline = DEADLINE
    broker: Broker

    def offsets(self, channel: str) -> list[int]:
        return [e.offset for e in self.events if e.channel == channel]


NodeFactory = Callable[..., Any]


@pytest.fixture(params=WITH_CLUSTER)
def backend(request: pytest.FixtureRequest) -> str:
    """The scenario suite also runs on Redis Cluster (sharded pub/sub, issue 12 C)."""
    return str(request.param)


@pytest.fixture
async def make_node(
    request: pytest.FixtureRequest, backend: str, namespace: str, redis_client: aioredis.Redis
) -> AsyncIterator[NodeFactory]:
    """``await make_node(**settings)`` → a started broker ("node") recording what it receives."""
    started: list[Node] = []

    async def make(node_id: str | None = None, **overrides: Any) -> Node:
        settings = Settings(redis_namespace=namespace, **overrides)
        url = backend_url(request, backend)
        node = Node(create_broker(url, settings, node_id or secrets.token_hex(4)))
        node.attach(node.broker)
        await node.broker.start()
        started.append(node)
        return node

    try:
        yield make
    finally:
        for node in started:
            await node.broker.stop()


redis_only = pytest.mark.parametrize("backend", ["redis"])


# -- ordering and frames ------------------------------------------------------------------
async def test_offsets_increase_by_one_and_arrive_in_order(make_node: NodeFactory) -> None:
    node = await make_node()
    await node.broker.subscribe("c")
    published = [await node.broker.publish("c", {"event": "tick", "n": i}) for i in range(30)]
    assert [e.offset for e in published] == list(range(1, 31))
    assert len({e.epoch for e in published}) == 1
    await node.wait_until(lambda: len(node.events) == 30)
    assert node.offsets("c") == list(range(1, 31))
    assert [orjson.loads(e.frame)["n"] for e in node.events] == list(range(30))
    assert node.events == published  # what a node receives is what publish returned


async def test_frame_has_event_first_then_broker_fields(make_node: NodeFactory) -> None:
    node = await make_node()
    await node.broker.subscribe("user:1")
    payload = {
        "event": "notification",
        "channel": "spoofed",
        "offset": 99,
        "title": 'é "quoted"',
        "n": [1, 2],
    }
    sent = await node.broker.publish("user:1", payload)
    await node.wait_until(lambda: len(node.events) == 1)
    frame = orjson.loads(node.events[0].frame)
    assert list(frame)[:4] == ["event", "channel", "offset", "epoch"]
    assert frame == {
        "event": "notification",
        "channel": "user:1",
        "offset": 1,
        "epoch": sent.epoch,
        "title": 'é "quoted"',
        "n": [1, 2],
    }
    bare = await node.broker.publish("user:1", {"event": "ping"})
    assert orjson.loads(bare.frame) == {
        "event": "ping",
        "channel": "user:1",
        "offset": 2,
        "epoch": sent.epoch,
    }


async def test_publish_requires_an_event_name(make_node: NodeFactory) -> None:
    node = await make_node()
    with pytest.raises(ValueError):
        await node.broker.publish("c", {"title": "no event"})
    assert (await node.broker.position("c")).offset == 0


async def test_channels_are_independent(make_node: NodeFactory) -> None:
    node = await make_node()
    await node.broker.publish("a", {"event": "x"})
    await node.broker.publish("a", {"event": "x"})
    other = await node.broker.publish("b", {"event": "x"})
    assert other.offset == 1
    assert (await node.broker.position("a")).offset == 2


# -- history ------------------------------------------------------------------------------
async def test_position_creates_a_stable_epoch(make_node: NodeFactory) -> None:
    node = await make_node()
    first = await node.broker.position("fresh")
    assert first.offset == 0 and first.epoch
    assert await node.broker.position("fresh") == first
    event = await node.broker.publish("fresh", {"event": "x"})
    assert (event.offset, event.epoch) == (1, first.epoch)


async def test_history_replays_exactly_what_was_missed(make_node: NodeFactory) -> None:
    node = await make_node()
    sent = [await node.broker.publish("c", {"event": "e", "n": i}) for i in range(5)]
    epoch = sent[0].epoch

    missed = await node.broker.history("c", Position(2, epoch))
    assert missed.recovered
    assert [e.offset for e in missed.events] == [3, 4, 5]
    assert [e.frame for e in missed.events] == [e.frame for e in sent[2:]]
    assert missed.position == Position(5, epoch)

    up_to_date = await node.broker.history("c", Position(5, epoch))
    assert up_to_date.recovered and up_to_date.events == []

    everything = await node.broker.history("c", None)
    assert everything.recovered and [e.offset for e in everything.events] == [1, 2, 3, 4, 5]

    page = await node.broker.history("c", Position(1, epoch), limit=2)
    assert page.recovered and [e.offset for e in page.events] == [2, 3]


async def test_concurrent_history_reads_answer_each_caller_as_alone(
    make_node: NodeFactory, backend: str
) -> None:
    """A reconnect storm asks the same channel's history many times at once: each caller gets
    exactly the answer of its own read (events after its ``since``, its own ``recovered``),
    whether or not the broker coalesced the reads (synthia_rt/broker/coalesce.py)."""
    node = await make_node()
    sent = [await node.broker.publish("c", {"event": "e", "n": i}) for i in range(8)]
    epoch = sent[0].epoch
    asks = [Position(n, epoch) for n in range(9)] + [Position(3, "old-epoch"), Position(99, epoch)]
    coalescer = getattr(node.broker, "_coalescer", None)
    reads_before = coalescer.reads if coalescer is not None else 0
    together = await asyncio.gather(*(node.broker.history("c", since) for since in asks))
    alone = [await node.broker.history("c", since) for since in asks]
    for since, a, b in zip(asks, together, alone, strict=True):
        assert (a.position, a.recovered) == (b.position, b.recovered), since
        assert [e.frame for e in a.events] == [e.frame for e in b.events], since
    assert [e.offset for e in together[5].events] == [6, 7, 8] and together[5].recovered
    assert not together[9].recovered and not together[10].recovered  # must re-sync
    if coalescer is not None:
        # 11 concurrent requests: one read per epoch asked, plus one for the future offset
        # (not a slice of the group's read); then 11 alone.
        assert coalescer.reads - reads_before == 3 + len(asks)


async def test_history_not_recovered_when_trimmed(make_node: NodeFactory, backend: str) -> None:
    node = await make_node(history_size=5)
    # Redis trims approximately (whole stream nodes of 100 entries), so it needs more events.
    count = 12 if backend == "memory" else 320
    for i in range(count):
        await node.broker.publish("c", {"event": "e", "n": i})
    top = await node.broker.position("c")
    history = await node.broker.history("c", Position(1, top.epoch))
    assert not history.recovered
    offsets = [e.offset for e in history.events]
    assert 5 <= len(offsets) < count - 1  # at least history_size kept, the oldest trimmed
    assert offsets == list(range(offsets[0], count + 1))  # what is kept is contiguous up to top


async def test_history_not_recovered_for_another_epoch_or_a_future_offset(
    make_node: NodeFactory,
) -> None:
    node = await make_node()
    for _ in range(3):
        await node.broker.publish("c", {"event": "e"})
    epoch = (await node.broker.position("c")).epoch

    other = await node.broker.history("c", Position(1, "not-" + epoch))
    assert not other.recovered
    assert [e.offset for e in other.events] == [1, 2, 3]  # all that is kept, to re-sync from

    future = await node.broker.history("c", Position(7, epoch))
    assert not future.recovered
    assert [e.offset for e in future.events] == [1, 2, 3]


async def test_epoch_changes_when_history_is_lost(
    make_node: NodeFactory, backend: str, namespace: str, redis_client: aioredis.Redis
) -> None:
    node = await make_node()
    await node.broker.subscribe("c")
    for _ in range(3):
        await node.broker.publish("c", {"event": "e"})
    before = await node.broker.position("c")
    if backend == "redis":
        await redis_client.delete(*keys.channel_keys(namespace, "c"))  # as TTL expiry would
        broker = node.broker
    else:
        clock = [0.0]  # the memory broker honours history_ttl against its clock
        broker = MemoryBroker(Settings(history_ttl=60), "n", clock=lambda: clock[0])
        for _ in range(3):
            await broker.publish("c", {"event": "e"})
        before = await broker.position("c")
        clock[0] = 61.0
    after = await broker.position("c")
    assert after.offset == 0 and after.epoch != before.epoch
    event = await broker.publish("c", {"event": "e"})
    assert (event.offset, event.epoch) == (1, after.epoch)
    lost = await broker.history("c", before)
    assert not lost.recovered
    assert [e.offset for e in lost.events] == [1]


@redis_only
async def test_history_keys_expire_after_history_ttl(
    make_node: NodeFactory, namespace: str, redis_client: aioredis.Redis
) -> None:
    node = await make_node(history_ttl=120)
    await node.broker.publish("c", {"event": "e"})
    for key in keys.channel_keys(namespace, "c"):
        assert 0 < await redis_client.pttl(key) <= 120_000
    assert await redis_client.xlen(keys.stream_key(namespace, "c")) == 1


# -- delivery across nodes ----------------------------------------------------------------
@redis_only
async def test_event_reaches_a_second_node(make_node: NodeFactory) -> None:
    a, b = await make_node("node-a"), await make_node("node-b")
    await b.broker.subscribe("c")
    sent = await a.broker.publish("c", {"event": "hello"})
    await b.wait_until(lambda: len(b.events) == 1)
    assert b.events[0] == sent
    assert a.events == []  # a never subscribed


async def test_signal_reaches_every_subscribed_node(make_node: NodeFactory, backend: str) -> None:
    a = await make_node("node-a")
    nodes = [a] if backend == "memory" else [a, await make_node("node-b")]
    for node in nodes:
        await node.broker.subscribe("user:7")
    await nodes[-1].broker.signal("user:7", {"kind": "revoke", "session": "s1"})
    for node in nodes:
        await node.wait_until(lambda node=node: len(node.signals) == 1)
        assert node.signals[0] == Signal(
            "user:7", {"kind": "revoke", "session": "s1"}, nodes[-1].broker.node_id
        )
        assert node.events == []
    assert (await a.broker.position("user:7")).offset == 0  # signals take no offset, no history


# -- subscriptions ------------------------------------------------------------------------
async def test_concurrent_subscribes_are_all_effective(
    make_node: NodeFactory, backend: str, namespace: str, redis_client: aioredis.Redis
) -> None:
    node = await make_node()

    async def subscribe_then_publish(i: int) -> None:
        # Each caller publishes as soon as ITS subscribe returns: a caller that joined a
        # subscription still in flight must not return early (its event would be lost).
        await node.broker.subscribe("hot")
        await node.broker.publish("hot", {"event": "e", "i": i})

    await asyncio.gather(*(subscribe_then_publish(i) for i in range(200)))
    await node.wait_until(lambda: len(node.events) == 200)
    assert node.offsets("hot") == list(range(1, 201))
    if backend == "redis":
        [(_, subscribers)] = await redis_client.pubsub_numsub(
            keys.pubsub_channel(namespace, 0, "hot")
        )
        assert subscribers == 1


async def test_unsubscribe_stops_delivery(
    make_node: NodeFactory, backend: str, namespace: str, redis_client: aioredis.Redis
) -> None:
    node = await make_node()
    await node.broker.subscribe("gone")
    await node.broker.subscribe("sentinel")
    await node.broker.publish("gone", {"event": "e"})
    await node.wait_until(lambda: len(node.events) == 1)
    await node.broker.unsubscribe("gone")
    await node.broker.unsubscribe("gone")  # idempotent
    await node.broker.publish("gone", {"event": "e"})
    await node.broker.publish("sentinel", {"event": "e"})
    # Events of one node arrive in publish order, so once the sentinel is in, "gone" #2 is not.
    await node.wait_until(lambda: len(node.offsets("sentinel")) == 1)
    assert node.offsets("gone") == [1]
    if backend == "redis":
        key = keys.pubsub_channel(namespace, 0, "gone")

        async def unsubscribed() -> None:
            # Redis-side state: nothing to wait on but polling (the deadline bounds a failure).
            while (await redis_client.pubsub_numsub(key))[0][1] != 0:  # noqa: ASYNC110
                await asyncio.sleep(0.01)

        await asyncio.wait_for(unsubscribed(), DEADLINE)


async def test_subscribe_unsubscribe_subscribe_ends_subscribed(
    make_node: NodeFactory, backend: str, namespace: str, redis_client: aioredis.Redis
) -> None:
    node = await make_node()
    await asyncio.gather(
        node.broker.subscribe("flip"),
        node.broker.unsubscribe("flip"),
        node.broker.subscribe("flip"),
    )
    await node.broker.publish("flip", {"event": "e"})
    await node.wait_until(lambda: len(node.events) == 1)
    if backend == "redis":
        [(_, subscribers)] = await redis_client.pubsub_numsub(
            keys.pubsub_channel(namespace, 0, "flip")
        )
        assert subscribers == 1


@redis_only
async def test_one_pubsub_connection_whatever_the_channel_count(
    make_node: NodeFactory, redis_client: aioredis.Redis
) -> None:
    node_id = "one-conn-" + secrets.token_hex(3)
    node = await make_node(node_id)
    await asyncio.gather(*(node.broker.subscribe(f"c{i}") for i in range(60)))
    clients = [
        c for c in await redis_client.client_list() if c.get("name") == f"synthia:{node_id}:pubsub"
    ]
    assert len(clients) == 1
    assert int(clients[0]["sub"]) == 60


async def test_a_failing_handler_does_not_stop_delivery(make_node: NodeFactory) -> None:
    node = await make_node()
    seen: list[int] = []

    def flaky(event: Event) -> None:
        seen.append(event.offset)
        node.changed.set()
        if event.offset == 1:
            raise RuntimeError("handler bug")

    async def slow_signal(signal: Signal) -> None:
        raise RuntimeError("async handler bug")

    node.broker.set_handlers(flaky, slow_signal, node.record(node.resubscribed))
    await node.broker.subscribe("c")
    await node.broker.signal("c", {"x": 1})
    await node.broker.publish("c", {"event": "e"})
    await node.broker.publish("c", {"event": "e"})
    await node.wait_until(lambda: seen == [1, 2])
    assert await node.broker.healthy()


@redis_only
async def test_malformed_pubsub_messages_are_dropped(
    make_node: NodeFactory, namespace: str, redis_client: aioredis.Redis
) -> None:
    node = await make_node()
    await node.broker.subscribe("c")
    for junk in (b"garbage", b"e12", b"e1:abc:9:{}", b"s[1]", b""):
        await redis_client.publish(keys.pubsub_channel(namespace, 0, "c"), junk)
    sent = await node.broker.publish("c", {"event": "e"})
    await node.wait_until(lambda: len(node.events) == 1)
    assert node.events == [sent] and node.signals == []


async def test_healthy_until_stopped(make_node: NodeFactory) -> None:
    node = await make_node()
    assert await node.broker.healthy()
    assert node.resubscribed == []  # nothing was lost, nothing to report
    await node.broker.stop()
    assert not await node.broker.healthy()


# -- deployments sharing one Redis server (issue 12 A) --------------------------------------
def _db_url(db: int) -> str:
    base, _, _ = REDIS_URL.rpartition("/")
    return f"{base}/{db}"


@redis_only
async def test_deployments_on_other_databases_do_not_cross_talk(
    backend: str, namespace: str
) -> None:
    """Two deployments, same namespace, databases 4 and 5 of one server: pub/sub is
    server-wide, so without the database in the channel name each heard the other."""
    nodes: list[Node] = []
    try:
        for db in (4, 5, 4):
            node = Node(create_broker(_db_url(db), Settings(redis_namespace=namespace), f"n{db}"))
            node.attach(node.broker)
            await node.broker.start()
            nodes.append(node)
        four, five, four_b = nodes
        for node in nodes:
            await node.broker.subscribe("broadcast")
        await five.broker.publish("broadcast", {"event": "from-5"})
        await five.broker.signal("broadcast", {"from": 5})
        await four.broker.publish("broadcast", {"event": "from-4"})
        await four.broker.signal("broadcast", {"from": 4})
        # Same database: delivered (both nodes of deployment 4 hear it) ...
        for node in (four, four_b):
            await node.wait_until(lambda n=node: len(n.events) == 1 and len(n.signals) == 1)  # type: ignore[misc]
        # Deployment 5 published first; a sentinel published after deployment 4's event
        # arrives after it on the same server, so 5 has heard all it would ever hear.
        await five.broker.publish("broadcast", {"event": "from-5"})
        await five.wait_until(lambda: len(five.events) == 2 and len(five.signals) == 1)
        # ... and each deployment heard only its own (both published at offset 1 of its db).
        for node, origin in ((four, 4), (four_b, 4), (five, 5)):
            names = [orjson.loads(e.frame)["event"] for e in node.events]
            assert names == [f"from-{origin}"] * (2 if origin == 5 else 1)
            assert [s.data for s in node.signals] == [{"from": origin}]
    finally:
        for node in nodes:
            await node.broker.stop()
        for db in (4, 5):
            client = aioredis.Redis.from_url(_db_url(db))
            async for key in client.scan_iter(match=f"{namespace}:*", count=1000):
                await client.delete(key)
            await client.aclose()
