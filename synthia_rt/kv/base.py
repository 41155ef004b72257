"""The key-value interface shared by revocation, rate limits, uploads, presence and the cache.

All keys passed in are *relative*; implementations prefix them with ``<namespace>:`` so that
everything this service writes is under one prefix (and nothing outside it can be touched).
Callers that need Redis Cluster co-location put a hash tag in the key (``{...}``).
Every method is atomic on its own key; none spans two keys.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol


class KeyValue(Protocol):
    namespace: str

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> bool: ...

    async def get(self, key: str) -> bytes | None: ...
    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Several keys (any slots) in one round trip; each is read atomically on its own."""

    async def set(
        self, key: str, value: bytes, ttl: float | None = None, *, nx: bool = False
    ) -> bool:
        """Store ``value``; with ``nx`` only if absent. Returns whether it was written."""

    async def delete(self, *keys: str) -> int: ...
    async def exists(self, key: str) -> bool: ...
    async def expire(self, key: str, ttl: float) -> None: ...
    async def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """Increment; ``ttl`` is set when the key is created by this call."""

    async def append_at(self, key: str, offset: int, data: bytes, ttl: float) -> int:
        """Append ``data`` iff the value's current length is ``offset`` (missing = 0).

        Returns the new length on success, or ``-(current length) - 1`` when ``offset`` is wrong,
        so a refused write changes nothing. Refreshes the TTL on success.
        """

    async def strlen(self, key: str) -> int: ...
    async def zadd(self, key: str, member: str, score: float, ttl: float | None = None) -> None: ...
    async def zrem(self, key: str, member: str) -> None: ...
    async def zcount_above(self, key: str, min_score: float) -> int:
        """Members with score > ``min_score`` (older ones are pruned as a side effect)."""

    async def zadd_capped(
        self,
        key: str,
        member: str,
        score: float,
        *,
        floor: float,
        cap: int,
        ttl: float,
        drop: Sequence[str] = (),
    ) -> bool:
        """In one atomic step: prune members scored at or below ``floor``, remove ``drop``,
        then add ``member`` (refreshing ``ttl``) unless ``cap`` members remain. Returns whether
        it was added; a ``member`` already present is re-scored and counts as added."""

    def scan(self, match: str = "*") -> AsyncIterator[str]:
        """Relative keys matching a glob ``match``; SCAN-based, never KEYS."""
        ...

    async def used_memory(self) -> int | None: ...
