"""Cluster-wide count of a user's open sockets, for the per-user connection cap.

Each socket is a member of the sorted set ``presence:{<user>}`` scored by its last heartbeat.
A node refreshes its members every ``HEARTBEAT`` seconds, so the sockets of a node that died
stop counting after ``TTL`` seconds without anyone cleaning up after it.

Removals are batched by one background task instead of awaited by each closing socket: when
thousands of sockets close at once (a node restart, a network blip) they would otherwise all
queue for Redis connections at the same moment.
"""

from __future__ import annotations

import asyncio
import logging
import time

from synthia_rt.kv.base import KeyValue

log = logging.getLogger(__name__)

TTL = 90.0
HEARTBEAT = 30.0
FLUSH = 0.5  # seconds between batched removals


class Presence:
    def __init__(self, kv: KeyValue, cap: int) -> None:
        self.kv = kv
        self.cap = cap
        self._members: dict[str, str] = {}  # connection id → key
        self._gone: list[tuple[str, str]] = []  # (key, connection id) awaiting removal
        self._tasks: list[asyncio.Task[None]] = []

    @staticmethod
    def key(user_id: str) -> str:
        return f"presence:{{{user_id}}}"

    async def try_add(self, user_id: str, connection_id: str) -> bool:
        """Count this socket in; False when the user already holds ``cap`` live sockets.
        One round trip: the check and the add are one script on the user's key."""
        key, now = self.key(user_id), time.time()
        mine = [item for item in self._gone if item[0] == key]
        if mine:  # this user's sockets that just closed here must not count against them
            self._gone = [item for item in self._gone if item[0] != key]
        admitted = await self.kv.zadd_capped(
            key,
            connection_id,
            now,
            floor=now - TTL,
            cap=self.cap,
            ttl=TTL,
            drop=[member for _, member in mine],
        )
        if admitted:
            self._members[connection_id] = key
        return admitted

    async def count(self, user_id: str) -> int:
        """The user's live sockets on every node (those closing here not counted)."""
        key = self.key(user_id)
        closing = sum(1 for item in self._gone if item[0] == key)
        return max(0, await self.kv.zcount_above(key, time.time() - TTL) - closing)

    def remove(self, connection_id: str) -> None:
        """Stop counting this socket (flushed to the store within ``FLUSH`` seconds)."""
        key = self._members.pop(connection_id, None)
        if key is not None:
            self._gone.append((key, connection_id))

    def start(self) -> None:
        self._tasks = [
            asyncio.ensure_future(self._heartbeat()),
            asyncio.ensure_future(self._flush_loop()),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        await self._flush()  # leave no stale member behind on a clean shutdown

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH)
            await self._flush()

    async def _flush(self) -> None:
        gone, self._gone = self._gone, []
        if not gone:
            return
        try:  # concurrently: the store pipelines them (one round trip for the batch)
            await asyncio.gather(*(self.kv.zrem(key, member) for key, member in gone))
        except asyncio.CancelledError:
            self._gone.extend(gone)  # ZREM twice is harmless: the shutdown flush retries
            raise
        except Exception:  # noqa: BLE001 - they expire after TTL anyway
            log.warning("presence cleanup failed; members expire on their own")

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT)
            now = time.time()
            for connection_id, key in list(self._members.items()):
                try:
                    await self.kv.zadd(key, connection_id, now, ttl=TTL)
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - next beat retries; the cap is advisory
                    log.warning("presence heartbeat failed", exc_info=True)
                    break
