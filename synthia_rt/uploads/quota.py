"""Upload quotas: bytes one user holds in the KV store, and bytes one process holds in memory.

* :class:`UserBytes` — a per-user counter ``upload-bytes:<user>`` in the shared store, charged
  when upload bytes are about to be kept (a socket upload's declared size at ``analysis.start``,
  a REST file's cleaned bytes) and refunded when they leave (upload finished or cancelled,
  file taken by an analysis). Each charge renews its TTL (``upload_ttl``, the longest any
  upload byte is kept), so a count a crashed node never refunded dies with the bytes it
  stood for. Past ``upload_user_bytes`` → ``rate_limited`` (429), nothing charged.
* :class:`ProcessBytes` — an in-memory count of upload bytes this process holds right now
  (request bodies being read, chunks being written, images being decoded). Past
  ``upload_process_bytes`` → ``unavailable`` (503, retry in a second): the node is busy,
  another node (or the same one shortly) can take it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from synthia_rt.errors import AppError, ErrorCode
from synthia_rt.kv.base import KeyValue

USER_RETRY_AFTER = 60.0  # seconds; uploads in progress finish or expire meanwhile
PROCESS_RETRY_AFTER = 1.0


class UserBytes:
    def __init__(self, kv: KeyValue, limit: int, ttl: float) -> None:
        self.kv = kv
        self.limit = limit
        self.ttl = ttl

    @staticmethod
    def _key(user_id: str) -> str:
        return f"upload-bytes:{user_id}"

    async def charge(self, user_id: str, amount: int) -> None:
        if amount <= 0:
            return
        key = self._key(user_id)
        total = await self.kv.incr(key, amount, self.ttl)
        if total > self.limit:
            await self.kv.incr(key, -amount)
            raise AppError(
                ErrorCode.RATE_LIMITED,
                "You hold too many upload bytes; finish or cancel an upload first.",
                retry_after=USER_RETRY_AFTER,
            )
        await self.kv.expire(key, self.ttl)

    async def refund(self, user_id: str, amount: int) -> None:
        if amount <= 0:
            return
        if await self.kv.incr(self._key(user_id), -amount) < 0:
            await self.kv.delete(self._key(user_id))  # the count expired meanwhile: start afresh

    async def held(self, user_id: str) -> int:
        raw = await self.kv.get(self._key(user_id))
        return int(raw) if raw else 0


class ProcessBytes:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    @contextlib.contextmanager
    def hold(self, amount: int) -> Iterator[None]:
        if self.held + amount > self.limit:
            raise AppError(
                ErrorCode.UNAVAILABLE,
                "This node is busy with other uploads; retry shortly.",
                retry_after=PROCESS_RETRY_AFTER,
            )
        self.held += amount
        try:
            yield
        finally:
            self.held -= amount
