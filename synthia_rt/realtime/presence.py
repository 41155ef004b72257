"""Cluster-wide count of a user's open sockets, for the per-user connection cap.

Each socket is a member of the sorted set ``presence:{<user>}`` scored by its last heartbeat.
A node refreshes its members every ``HEARTBEAT`` seconds, so the sockets of a node that died
stop counting after ``TTL`` seconds without anyone cleaning up after it.
"""

from __future__ import annotations

import asyncio
import logging
import time

from synthia_rt.kv.base import KeyValue

log = logging.getLogger(__name__)

TTL = 90.0
HEARTBEAT = 30.0


class Presence:
    def __init__(self, kv: KeyValue, cap: int) -> None:
        self.kv = kv
        self.cap = cap
        self._members: dict[str, str] = {}  # connection id → key
        self._task: asyncio.Task[None] | None = None

    @staticmethod
    def key(user_id: str) -> str:
        return f"presence:{{{user_id}}}"

    async def try_add(self, user_id: str, connection_id: str) -> bool:
        """Count this socket in; False when the user already holds ``cap`` live sockets."""
        key, now = self.key(user_id), time.time()
        if await self.kv.zcount_above(key, now - TTL) >= self.cap:
            return False
        await self.kv.zadd(key, connection_id, now, ttl=TTL)
        self._members[connection_id] = key
        return True

    async def remove(self, connection_id: str) -> None:
        key = self._members.pop(connection_id, None)
        if key is not None:
            await self.kv.zrem(key, connection_id)

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._heartbeat())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

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
