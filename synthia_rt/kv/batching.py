"""Automatic pipelining of reads: the reads issued in one event-loop iteration leave together.

A socket handshake reads four keys (the token's denylist entry, the user's cutoff, the login's
revocation entry, the user's cached record), and a reconnect storm runs hundreds of handshakes
at once. Sent one by one, every read costs a connection checkout, a write syscall, a socket
timeout and a reply parse, and that per-command cost, not Redis, was the largest share of a
handshake's CPU (bench/findings.md). :class:`ReadBatcher` queues each read as a future and,
once per loop iteration, sends everything queued as one non-transactional pipeline (on Redis
Cluster, redis-py's cluster pipeline: one per shard, in parallel). The technique is what
rueidis (Centrifugo's Redis client) and ioredis call auto-pipelining.

Guarantees:

* Only reads go through it (``GET``, ``EXISTS``): running a batch twice is harmless, so a batch
  whose connection died is retried once as a whole (:func:`synthia_rt.redis_pool.idempotent`).
* A caller's cancellation never cancels the batch (nobody else's read is lost, and redis-py
  never sees a pipeline cancelled half-way); the cancelled caller's answer is dropped.
* One command's error (a ``WRONGTYPE``) fails that caller only; a connection error or timeout
  fails every caller of the batch with that error, which :mod:`synthia_rt.kv.redis` turns
  into ``unavailable``.
* Latency: a read waits for the end of the current loop iteration (microseconds), and a batch
  holds at most ``MAX_BATCH`` commands.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from synthia_rt.redis_pool import REFUSED, NotRunError, idempotent

MAX_BATCH = 512

Command = tuple[Any, ...]


class ReadBatcher:
    def __init__(self, client: Redis | RedisCluster, max_batch: int = MAX_BATCH) -> None:
        self._client = client
        self._max = max_batch
        self._queue: list[tuple[Command, asyncio.Future[Any]]] = []
        self._scheduled = False
        self._running: set[asyncio.Task[None]] = set()
        self.batches = 0  # pipelines sent (tests and the bench read these two)
        self.commands = 0

    def __call__(self, *command: Any) -> Awaitable[Any]:
        """Queue one read; the awaitable gives its reply (or raises its error)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((command, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._scheduled = False
        queued, self._queue = self._queue, []
        for start in range(0, len(queued), self._max):
            task = asyncio.ensure_future(self._run(queued[start : start + self._max]))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, batch: list[tuple[Command, asyncio.Future[Any]]]) -> None:
        live = [(command, future) for command, future in batch if not future.done()]
        if not live:
            return
        commands = [command for command, _ in live]
        try:
            replies = await idempotent(lambda: self._execute(commands))
        except asyncio.CancelledError:
            for _, future in live:
                future.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - handed to every caller of the batch
            for _, future in live:
                if not future.done():
                    future.set_exception(exc)
            return
        self.batches += 1
        self.commands += len(commands)
        for (_, future), reply in zip(live, replies, strict=True):
            if future.done():
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    async def _execute(self, commands: Sequence[Command]) -> list[Any]:
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for command in commands:
                    pipe.execute_command(*command)
                replies: list[Any] = await pipe.execute(raise_on_error=False)
        except NotRunError:
            raise
        except REFUSED as exc:  # a cluster mid-failover: nothing ran; retried as not run
            raise NotRunError(f"{type(exc).__name__}: {exc}") from exc
        for reply in replies:  # a connection error inside the replies fails the batch
            if isinstance(reply, RedisConnectionError | RedisTimeoutError):
                raise reply
        return replies

    async def close(self) -> None:
        """Let batches in flight finish (their callers are waiting for them)."""
        if self._running:
            await asyncio.gather(*list(self._running), return_exceptions=True)
