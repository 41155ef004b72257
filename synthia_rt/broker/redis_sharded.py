"""Sharded pub/sub on Redis Cluster: one pub/sub connection per shard primary per process.

Each channel's pub/sub name carries its hash tag ``{ch:<channel>}`` (see :mod:`keys`), so it
lives in the same slot as the channel's meta hash and stream, and the publish script's
SPUBLISH runs on the primary that owns them.  A channel is SSUBSCRIBEd on the listener
(:class:`PubSubListener` with ``sharded=True``) of the primary that owns its slot.

Topology changes (failover, resharding): the server pushes ``sunsubscribe`` for channels whose
slot it lost, and a watcher re-reads the slot map every ``check_interval`` anyway (a killed
primary pushes nothing).  Every channel whose owner changed is dropped from the old listener,
subscribed on the new owner's, and reported through ``on_resubscribed`` so the hub catches up
from history (the Stream moved with the slot, or was promoted with the replica).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from synthia_rt.broker.base import BrokerUnavailable
from synthia_rt.broker.redis_listener import MessageHandler, PubSubListener, ResubscribedHandler

log = logging.getLogger(__name__)

NodeClient = Callable[[str, int], Redis]  # host, port → a client with a pool of one


class ShardedListener:
    check_interval = 1.0  # seconds between slot-map checks
    degraded_interval = 0.2  # … while a shard serving channels is disconnected

    def __init__(
        self,
        cluster: RedisCluster,
        node_client: NodeClient,
        key_for: Callable[[str], bytes],
        on_message: MessageHandler,
        on_resubscribed: ResubscribedHandler,
    ) -> None:
        self._cluster = cluster
        self._node_client = node_client
        self._key_for = key_for
        self._on_message = on_message
        self._on_resubscribed = on_resubscribed
        self._shards: dict[str, tuple[PubSubListener, Redis]] = {}  # node name → listener
        self._owner: dict[str, str] = {}  # channel → node name of its listener
        self._retry: set[str] = set()  # moved channels whose new subscription failed
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        try:
            await self._cluster.initialize()
        except (RedisError, RedisClusterException) as exc:
            raise BrokerUnavailable("Redis Cluster is unreachable") from exc
        for node in self._cluster.get_primaries():
            await self._shard(node.name, node.host, int(node.port))
        self._task = asyncio.create_task(self._watch(), name="synthia-pubsub-shards")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for listener, client in self._shards.values():
            await listener.stop()
            await client.aclose()
        self._shards.clear()
        self._owner.clear()

    @property
    def connected(self) -> bool:
        return (
            bool(self._shards)
            and all(
                listener.connected
                for name, (listener, _) in self._shards.items()
                if self._used(name)
            )
            and self._task is not None
            and not self._task.done()
        )

    def _used(self, name: str) -> bool:
        return name in self._owner.values() or not self._owner

    def channels(self) -> list[str]:
        return list(self._owner)

    def nodes(self) -> list[str]:
        """The nodes (``host:port``) this process holds a pub/sub connection to."""
        return list(self._shards)

    # -- subscriptions ------------------------------------------------------------------
    async def subscribe(self, channel: str) -> None:
        name = self._owner.get(channel)
        if name is None:
            name = await self._route(channel)
            self._owner[channel] = name
        await self._shards[name][0].subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        name = self._owner.pop(channel, None)
        self._retry.discard(channel)
        if name is not None and name in self._shards:
            await self._shards[name][0].unsubscribe(channel)

    # -- topology -----------------------------------------------------------------------
    async def _route(self, channel: str) -> str:
        try:
            node = self._cluster.get_node_from_key(self._key_for(channel).decode())
        except RedisClusterException as exc:  # the slot map lacks the slot (mid-failover)
            raise BrokerUnavailable("no primary owns the channel's slot") from exc
        if node is None:
            raise BrokerUnavailable("no primary owns the channel's slot")
        await self._shard(node.name, node.host, int(node.port))
        return str(node.name)

    async def _shard(self, name: str, host: str, port: int) -> PubSubListener:
        if name not in self._shards:
            client = self._node_client(host, port)
            listener = PubSubListener(
                client,
                self._key_for,
                self._on_message,
                self._on_resubscribed,
                sharded=True,
                on_lost=lambda _channel: self._changed.set(),
            )
            self._shards[name] = (listener, client)
            await listener.start(wait=1.0)
        return self._shards[name][0]

    async def _watch(self) -> None:
        while True:
            # While a shard that serves channels is unreachable (its primary died), look more
            # often: the replica's promotion is then noticed within a fraction of a second.
            degraded = any(
                not listener.connected
                for name, (listener, _) in self._shards.items()
                if name in self._owner.values()
            )
            interval = self.degraded_interval if degraded else self.check_interval
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._changed.wait()
            self._changed.clear()
            try:
                await self._rebalance()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the cluster may be mid-failover: retry
                log.info("slot map check failed (%s); retrying", type(exc).__name__)

    async def _rebalance(self) -> None:
        await self._cluster.nodes_manager.initialize()  # re-reads CLUSTER SLOTS
        moved: list[str] = []
        for channel, old in list(self._owner.items()):
            new = await self._route(channel)
            if new == old and channel not in self._retry:
                continue
            if new != old:
                self._shards[old][0].drop(channel)  # the old owner dropped it (or is dead)
                self._owner[channel] = new
            moved.append(channel)
        await self._retire()
        if not moved:
            return
        log.info("%d channels moved to another shard; re-subscribing", len(moved))
        results = await asyncio.gather(
            *(self._shards[self._owner[c]][0].subscribe(c) for c in moved if c in self._owner),
            return_exceptions=True,
        )
        done: list[str] = []
        for channel, result in zip([c for c in moved if c in self._owner], results, strict=True):
            if isinstance(result, BrokerUnavailable):
                # Not confirmed yet (the new primary is still starting to serve): again at the
                # next check, and the hub hears of it only once it is effective.
                self._retry.add(channel)
            elif isinstance(result, BaseException):
                raise result
            else:
                self._retry.discard(channel)
                done.append(channel)
        if self._retry:
            log.warning("%d channels not re-subscribed yet; retrying", len(self._retry))
            self._changed.set()
        await _report(self._on_resubscribed, done)

    async def _retire(self) -> None:
        """Close the listeners of nodes that are no longer primaries and serve no channel
        (a killed primary's listener would otherwise reconnect to it forever)."""
        primaries = {node.name for node in self._cluster.get_primaries()}
        used = set(self._owner.values())
        for name in [n for n in self._shards if n not in primaries and n not in used]:
            listener, client = self._shards.pop(name)
            await listener.stop()
            await client.aclose()


async def _report(handler: Callable[[list[str]], Awaitable[None]], channels: list[str]) -> None:
    try:
        await handler(channels)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("on_resubscribed failed")
