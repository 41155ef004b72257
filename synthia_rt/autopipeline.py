"""Automatic pipelining: the idempotent commands issued in one loop iteration leave together.

A socket handshake reads four keys (the token's denylist entry, the user's cutoff, the login's
revocation entry, the user's cached record), and a reconnect storm runs hundreds of handshakes
at once. Sent one by one, every read costs a connection checkout, a write syscall, a socket
timeout and a reply parse, and that per-command cost, not Redis, was the largest share of a
handshake's CPU (bench/findings.md). :class:`AutoPipeline` queues each command as a future and
sends everything queued as one write. The technique is what rueidis (Centrifugo's Redis
client) and ioredis call auto-pipelining.

On one Redis server the batches go over one connection of their own, one batch in flight at a
time: what callers queue while a batch is out leaves as the next batch, so the busier the
process, the larger the batches (no pool checkout, no pipeline object, one write and one read
per batch). On Redis Cluster the batch's commands go through the cluster client one by one (it
follows failovers; its pipeline did not), one task per loop iteration, so a slow shard holds up
nobody else's reads: there a batch saves tasks, not round trips.

Guarantees:

* Only idempotent commands go through it: reads (``GET``, ``EXISTS``), ``ZREM`` and the scripts whose
  second run changes nothing more (the presence cap, the broker's position read). Running a
  batch twice is harmless, so a batch whose connection died is retried once as a whole, on a
  fresh connection (:func:`synthia_rt.redis_pool.idempotent`). Scripts go as ``EVALSHA``; a
  server that lost them (a restart) gets ``SCRIPT LOAD`` and the refused commands once more.
* A caller's cancellation never cancels the batch (nobody else's read is lost, and a
  connection is never left with replies half read); the cancelled caller's answer is dropped.
* One command's error (a ``WRONGTYPE``) fails that caller only; a connection error or timeout
  fails every caller of the batch with that error, which :mod:`synthia_rt.kv.redis` turns
  into ``unavailable``. A timeout is not retried (a slow Redis would only get more load).
* Latency: a read waits for the end of the current loop iteration (microseconds), or for the
  batch in flight (one round trip), and a batch holds at most ``MAX_BATCH`` commands.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Sequence
from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from synthia_rt.redis_pool import idempotent

MAX_BATCH = 512

Command = tuple[Any, ...]
Item = tuple[Command, "AsyncScript | None", asyncio.Future[Any]]


class AutoPipeline:
    def __init__(self, client: Redis | RedisCluster, max_batch: int = MAX_BATCH) -> None:
        self._client = client
        self._cluster = isinstance(client, RedisCluster)
        self._max = max_batch
        self._queue: list[Item] = []
        self._scheduled = False
        self._running: set[asyncio.Task[None]] = set()
        self._sender: asyncio.Task[None] | None = None  # one server: the batch in flight
        self._conn: AbstractConnection | None = None  # one server: the batches' connection
        self.batches = 0  # pipelines sent (tests and the bench read these two)
        self.commands = 0

    def __call__(self, *command: Any) -> Awaitable[Any]:
        """Queue one read; the awaitable gives its reply (or raises its error)."""
        return self._queue_item(command, None)

    def script(
        self, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]
    ) -> Awaitable[Any]:
        """Queue one run of an idempotent script (registered on the same client)."""
        return self._queue_item(("EVALSHA", script.sha, len(keys), *keys, *args), script)

    def _queue_item(self, command: Command, script: AsyncScript | None) -> Awaitable[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((command, script, future))
        if not self._scheduled and self._sender is None:  # a sender in flight takes it next
            self._scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._scheduled = False
        if self._cluster:
            queued, self._queue = self._queue, []
            for start in range(0, len(queued), self._max):
                task = asyncio.ensure_future(self._run(queued[start : start + self._max]))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
        elif self._sender is None and self._queue:
            self._sender = asyncio.ensure_future(self._send_all())

    async def _send_all(self) -> None:
        """One server: send what is queued, one batch at a time, until nothing is left."""
        try:
            while self._queue:
                batch, self._queue = self._queue[: self._max], self._queue[self._max :]
                await self._run(batch)
        finally:
            self._sender = None
            if self._queue and not self._scheduled:  # cancelled with reads still queued
                self._scheduled = True
                asyncio.get_running_loop().call_soon(self._flush)

    async def _run(self, batch: list[Item]) -> None:
        live = [item for item in batch if not item[2].done()]
        if not live:
            return
        try:
            replies = await idempotent(lambda: self._execute([c for c, _, _ in live]))
            missing = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
            if missing:  # the server lost our scripts (a restart): load them, run those again
                scripts = {id(s): s for i in missing if (s := live[i][1]) is not None}
                for script in scripts.values():
                    await self._load(script)
                again = await idempotent(lambda: self._execute([live[i][0] for i in missing]))
                for i, reply in zip(missing, again, strict=True):
                    replies[i] = reply
        except asyncio.CancelledError:
            for _, _, future in live:
                future.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - handed to every caller of the batch
            for _, _, future in live:
                if not future.done():
                    future.set_exception(exc)
            return
        self.batches += 1
        self.commands += len(live)
        for (_, _, future), reply in zip(live, replies, strict=True):
            if future.done():
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    async def _execute(self, commands: Sequence[Command]) -> list[Any]:
        if isinstance(self._client, RedisCluster):
            # Through the cluster client one by one (still one task for the batch): its
            # execute_command re-reads the slot map and retries what did not run when a node
            # dies; redis-py's cluster pipeline kept sending to a killed primary (measured).
            replies: list[Any] = await asyncio.gather(
                *(self._client.execute_command(*command) for command in commands),
                return_exceptions=True,
            )
            for reply in replies:
                if isinstance(reply, RedisConnectionError | RedisTimeoutError):
                    raise reply
            return replies
        conn = await self._connection()
        try:
            # One deadline for the batch (the connection's socket timeout), not one per reply.
            async with asyncio.timeout(conn.socket_timeout):
                await conn.send_packed_command(conn.pack_commands(commands), check_health=False)
                replies = []
                for _ in commands:
                    try:
                        replies.append(await conn.read_response(timeout=math.inf))
                    except ResponseError as exc:  # this command's error reply (read in full)
                        replies.append(exc)
        except TimeoutError:
            await conn.disconnect()
            raise RedisTimeoutError("Redis did not answer a pipelined batch in time") from None
        except BaseException:
            # Replies half read (a broken link, close() cancelling us): the connection is out
            # of step with its replies. The retry takes a fresh one.
            await conn.disconnect()
            raise
        return replies

    async def _connection(self) -> AbstractConnection:
        """The batches' own connection, kept between batches. Taken from the client's pool by
        its checkout (which reconnects, health-checks and retries: synthia_rt.redis_pool), and
        taken again that way after a failure; PINGed first when idle past the health-check
        interval."""
        assert isinstance(self._client, Redis)
        pool = self._client.connection_pool
        conn = self._conn
        if conn is not None and not conn.is_connected:
            self._conn = None
            await pool.release(conn)
            conn = None
        if conn is None:
            conn = self._conn = await pool.get_connection()  # type: ignore[no-untyped-call]
        else:
            await conn.check_health()  # type: ignore[no-untyped-call]
        return conn

    async def _load(self, script: AsyncScript) -> None:
        await idempotent(lambda: self._client.script_load(script.script))

    async def close(self) -> None:
        """Let batches in flight finish (their callers are waiting for them), then hand the
        connection back to the pool (the client's close disconnects it)."""
        pending = [*self._running, *([self._sender] if self._sender is not None else [])]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        conn, self._conn = self._conn, None
        if conn is not None and isinstance(self._client, Redis):
            await self._client.connection_pool.release(conn)
