"""Redis broker: pub/sub for live fan-out, one Stream per channel for bounded history.

``publish`` is one Lua script per event (epoch, offset, XADD with MAXLEN ~, TTLs, PUBLISH: all
atomic, all in one hash slot, see :mod:`synthia_rt.broker.scripts`).  Commands use their own
connection pool with short socket timeouts, so a publish while Redis is down raises
:class:`BrokerUnavailable` within seconds instead of hanging.  Live delivery goes through the
single pub/sub connection of :class:`PubSubListener`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

import orjson
from redis.asyncio import Redis, RedisCluster
from redis.exceptions import RedisError
from redis.typing import EncodableT

from synthia_rt.autopipeline import AutoPipeline
from synthia_rt.broker import keys, replay, wire
from synthia_rt.broker.base import (
    BrokerUnavailable,
    Event,
    History,
    Position,
    Signal,
)
from synthia_rt.broker.coalesce import HistoryCoalescer
from synthia_rt.broker.handlers import BrokerHandlers
from synthia_rt.broker.redis_listener import PubSubListener
from synthia_rt.broker.redis_sharded import ShardedListener
from synthia_rt.broker.scripts import HISTORY, POSITION, PUBLISH, PUBLISH_SHARDED
from synthia_rt.broker.supervise import invoke
from synthia_rt.redis_pool import checked_pool, cluster_client, idempotent, is_cluster
from synthia_rt.settings import Settings

log = logging.getLogger(__name__)

SOCKET_TIMEOUT = 2.0  # seconds; bounds how long a command can hang on a dead Redis
HEALTH_CHECK_INTERVAL = 15  # seconds idle before a pooled command connection is PINGed on use
COMMAND_POOL_SIZE = 64  # command connections per process


def client_name(node_id: str, role: str) -> str:
    """``synthia:<node>:<role>`` as shown by CLIENT LIST (CLIENT SETNAME refuses spaces)."""
    return f"synthia:{re.sub(r'[^A-Za-z0-9._-]', '_', node_id)}:{role}"


def _client(url: str, name: str, pool_size: int, **extra: Any) -> Redis:
    # A blocking pool: a burst of publishes queues for a connection (up to SOCKET_TIMEOUT)
    # instead of failing at once when every connection is busy.  Connections are checked (and
    # replaced) at checkout, and a failed checkout is retried; a command, once written, is
    # retried only where the caller says it is idempotent (see synthia_rt.redis_pool): never
    # the publish script, whose second run would be a second event.
    pool = checked_pool(
        url,
        max_connections=pool_size,
        timeout=SOCKET_TIMEOUT,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=SOCKET_TIMEOUT,
        socket_keepalive=True,
        client_name=name,
        **extra,
    )
    return Redis.from_pool(pool)


class RedisBroker(BrokerHandlers):
    def __init__(self, url: str, settings: Settings, node_id: str) -> None:
        super().__init__()
        self.node_id = node_id
        self._ns = settings.redis_namespace
        self._maxlen = max(1, settings.history_size)
        self._ttl_ms = max(1, settings.history_ttl) * 1000
        self._cluster = is_cluster(url)
        self._redis: Redis | RedisCluster
        self.listener: PubSubListener | ShardedListener
        if self._cluster:
            # Commands go to the primary owning each channel's slot (the scripts touch one
            # channel's keys: one slot); pub/sub is sharded, one connection per primary.
            self._redis = cluster_client(
                url,
                max_connections=COMMAND_POOL_SIZE,
                socket_timeout=SOCKET_TIMEOUT,
                socket_connect_timeout=SOCKET_TIMEOUT,
                socket_keepalive=True,
                health_check_interval=HEALTH_CHECK_INTERVAL,
                client_name=client_name(node_id, "cmd"),
            )
            self._db = 0  # a cluster has database 0 only
            pubsub_name = client_name(node_id, "pubsub")
            self.listener = ShardedListener(
                self._redis,
                lambda host, port: _client(f"redis://{host}:{port}/0", pubsub_name, 1),
                self._wire_name,
                self._message,
                self._resubscribed,
            )
        else:
            self._redis = _client(
                url,
                client_name(node_id, "cmd"),
                COMMAND_POOL_SIZE,
                health_check_interval=HEALTH_CHECK_INTERVAL,
            )
            # A separate pool of ONE: the pub/sub connection never serves commands (and vice
            # versa), and a second pub/sub connection cannot exist even by mistake.
            pubsub_redis = _client(url, client_name(node_id, "pubsub"), 1)
            # Pub/sub ignores the database number: it goes into the channel names (see keys).
            self._db = int(self._redis.connection_pool.connection_kwargs.get("db") or 0)
            self.listener = PubSubListener(
                pubsub_redis, self._wire_name, self._message, self._resubscribed
            )
            self._pubsub_redis = pubsub_redis
        self._publish = self._redis.register_script(PUBLISH_SHARDED if self._cluster else PUBLISH)
        self._position = self._redis.register_script(POSITION)
        self._batch = AutoPipeline(self._redis)  # position reads of one loop iteration together
        self._coalescer = HistoryCoalescer(self._read_history)
        self._history = self._redis.register_script(HISTORY)

    def _wire_name(self, channel: str) -> bytes:
        return keys.pubsub_channel(self._ns, self._db, channel)

    async def start(self) -> None:
        try:
            await self._redis.ping()
        except RedisError as exc:
            raise BrokerUnavailable("Redis is unreachable") from exc
        await self.listener.start()

    async def stop(self) -> None:
        await self.listener.stop()
        if not self._cluster:
            await self._pubsub_redis.aclose()
        await self._coalescer.close()
        await self._batch.close()
        await self._redis.aclose()

    async def healthy(self) -> bool:
        try:
            pong = await self._redis.ping()
        except RedisError:
            return False
        return bool(pong) and self.listener.connected

    # -- publishing ---------------------------------------------------------------------
    async def publish(self, channel: str, payload: Mapping[str, Any]) -> Event:
        packed = wire.pack_payload(payload)
        args: list[EncodableT] = [
            wire.new_epoch(),
            self._ttl_ms,
            packed,
            self._maxlen,
            self._wire_name(channel),
        ]
        # Not retried once written (a second run would be a second event with the next offset);
        # a connection found dead at checkout is replaced before anything is sent.
        try:
            offset, raw_epoch = await self._publish(
                keys=keys.channel_keys(self._ns, channel), args=args
            )
        except RedisError as exc:
            log.warning("publish failed: %s", type(exc).__name__)
            raise BrokerUnavailable("the event could not be published") from exc
        epoch = raw_epoch.decode()
        frame = wire.build_frame(packed, 0, orjson.dumps(channel), int(offset), epoch)
        return Event(channel, int(offset), epoch, frame)

    async def signal(self, channel: str, data: Mapping[str, Any]) -> None:
        try:
            # Retried like an idempotent command: a signal delivered twice (a revocation)
            # closes sockets that are already closing.
            message = wire.pack_signal(self.node_id, data)
            name = self._wire_name(channel)
            send = self._redis.spublish if self._cluster else self._redis.publish
            await idempotent(lambda: send(name, message))
        except RedisError as exc:
            raise BrokerUnavailable("the signal could not be sent") from exc

    # -- subscriptions ------------------------------------------------------------------
    async def subscribe(self, channel: str) -> None:
        """Returns once Redis confirmed the subscription.  Raises :class:`BrokerUnavailable`
        if it could not be confirmed in time (the channel is then not subscribed).
        Must not be awaited from a broker handler (they run on the listener task, which is
        the one reading the confirmation)."""
        await self.listener.subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        await self.listener.unsubscribe(channel)

    # -- history ------------------------------------------------------------------------
    async def position(self, channel: str) -> Position:
        try:
            # Pipelined with the other position reads of this loop iteration (every socket's
            # first subscribe to its user channel reads one); a second run finds the epoch the
            # first created.
            top, epoch = await self._batch.script(
                self._position,
                keys.channel_keys(self._ns, channel),
                [wire.new_epoch(), self._ttl_ms],
            )
        except RedisError as exc:
            raise BrokerUnavailable("history is unavailable") from exc
        return Position(int(top), epoch.decode())

    async def history(
        self, channel: str, since: Position | None, limit: int | None = None
    ) -> History:
        if limit is None and since is not None:  # storms: many sockets, same channel, same moment
            return await self._coalescer.history(channel, since)
        return await self._read_history(channel, since, limit)

    async def _read_history(
        self, channel: str, since: Position | None, limit: int | None = None
    ) -> History:
        if limit is not None and limit <= 0:
            position = await self.position(channel)
            return History([], position, replay.recovered(since, position, []))
        since_offset = since.offset if since is not None else 0
        args: list[EncodableT] = [
            wire.new_epoch(),
            self._ttl_ms,
            since.epoch if since is not None else "",
            since_offset,
            f"{since_offset + 1}-0",
            limit or 0,
        ]
        try:
            top, raw_epoch, entries = await idempotent(
                lambda: self._history(keys=keys.channel_keys(self._ns, channel), args=args)
            )
        except RedisError as exc:
            raise BrokerUnavailable("history is unavailable") from exc
        position = Position(int(top), raw_epoch.decode())
        channel_json = orjson.dumps(channel)
        events = [
            self._entry_event(channel, channel_json, position.epoch, entry) for entry in entries
        ]
        return History(events, position, replay.recovered(since, position, events))

    @staticmethod
    def _entry_event(channel: str, channel_json: bytes, epoch: str, entry: list[Any]) -> Event:
        entry_id, fields = entry
        offset = int(entry_id.split(b"-", 1)[0])
        packed = dict(zip(fields[::2], fields[1::2], strict=True))[b"d"]
        return Event(
            channel, offset, epoch, wire.build_frame(packed, 0, channel_json, offset, epoch)
        )

    # -- listener callbacks (run on the listener task) ----------------------------------
    async def _message(self, channel: str, data: bytes) -> None:
        try:
            if data[:1] == b"e":
                offset, epoch, start = wire.parse_event_message(data)
                frame = wire.build_frame(data, start, orjson.dumps(channel), offset, epoch)
                await invoke(self._on_event, Event(channel, offset, epoch, frame), "event")
            elif data[:1] == b"s":
                origin, payload = wire.unpack_signal(data)
                await invoke(self._on_signal, Signal(channel, payload, origin), "signal")
            else:
                raise ValueError("unknown message kind")
        except (ValueError, IndexError):
            log.warning("malformed pub/sub message on %r dropped", channel)

    async def _resubscribed(self, channels: list[str]) -> None:
        await invoke(self._on_resubscribed, channels, "resubscribed")
