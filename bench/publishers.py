"""Publishers: put one broadcast event into each target's own fan-out path.

* synthia — ``RedisBroker.publish("broadcast", …)`` in the server's namespace: the exact path a
  server-side publish takes (offset, history and PUBLISH in one Lua script), without REST or
  PostgreSQL in the measurement. synthia-cluster: the same, given the ``redis+cluster://`` URL
  (one-slot script, SPUBLISH).
* socketio — ``AsyncRedisManager(write_only=True).emit`` (socket.io's external emitter).
* broadcaster — ``Broadcast.publish`` on the Redis backend.
* websockets — a plain Redis ``PUBLISH``.

Each event carries ``seq`` and ``sent_at`` (``time.time()`` just before the publish call), so
every delivery's latency is measured on the client with the same clock (one machine).
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import orjson

from bench.targets import BROADCASTER, SOCKETIO, SYNTHIA_TARGETS, WEBSOCKETS


class Publisher(Protocol):
    async def start(self) -> None: ...
    async def publish(self, seq: int) -> float: ...
    async def stop(self) -> None: ...


def event(seq: int, sent_at: float) -> dict[str, Any]:
    return {"event": "notification", "title": "bench", "seq": seq, "sent_at": sent_at}


class SynthiaPublisher:
    def __init__(self, redis_url: str, namespace: str) -> None:
        from synthia_rt.broker.redis import RedisBroker
        from synthia_rt.settings import Settings

        self._broker = RedisBroker(redis_url, Settings(redis_namespace=namespace), "bench")

    async def start(self) -> None:
        await self._broker.start()

    async def publish(self, seq: int) -> float:
        sent_at = time.time()
        await self._broker.publish("broadcast", event(seq, sent_at))
        return sent_at

    async def stop(self) -> None:
        await self._broker.stop()


class SocketioPublisher:
    def __init__(self, redis_url: str, channel: str) -> None:
        import socketio

        self._manager = socketio.AsyncRedisManager(redis_url, channel=channel, write_only=True)

    async def start(self) -> None:
        return None

    async def publish(self, seq: int) -> float:
        sent_at = time.time()
        await self._manager.emit("broadcast", event(seq, sent_at), namespace="/")
        return sent_at

    async def stop(self) -> None:
        redis = getattr(self._manager, "redis", None)
        if redis is not None:
            await redis.aclose()


class BroadcasterPublisher:
    def __init__(self, redis_url: str, channel: str) -> None:
        from broadcaster import Broadcast

        self._broadcast = Broadcast(redis_url)
        self._channel = channel

    async def start(self) -> None:
        await self._broadcast.connect()

    async def publish(self, seq: int) -> float:
        sent_at = time.time()
        await self._broadcast.publish(self._channel, orjson.dumps(event(seq, sent_at)).decode())
        return sent_at

    async def stop(self) -> None:
        await self._broadcast.disconnect()


class RedisPublisher:
    def __init__(self, redis_url: str, channel: str) -> None:
        import redis.asyncio as aioredis

        self._redis = aioredis.Redis.from_url(redis_url)
        self._channel = channel

    async def start(self) -> None:
        await self._redis.ping()

    async def publish(self, seq: int) -> float:
        sent_at = time.time()
        await self._redis.publish(self._channel, orjson.dumps(event(seq, sent_at)))
        return sent_at

    async def stop(self) -> None:
        await self._redis.aclose()


def publisher_for(target: str, redis_url: str, channel: str) -> Publisher:
    """``channel`` is the synthia namespace for synthia, else the peer's Redis channel."""
    if target in SYNTHIA_TARGETS:
        return SynthiaPublisher(redis_url, channel)
    if target == SOCKETIO:
        return SocketioPublisher(redis_url, channel)
    if target == BROADCASTER:
        return BroadcasterPublisher(redis_url, channel)
    if target == WEBSOCKETS:
        return RedisPublisher(redis_url, channel)
    raise ValueError(target)
