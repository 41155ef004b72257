"""In-process twin of :class:`synthia_rt.kv.redis.RedisKV` for the embedded default and tests.

Values are bytes (strings) or ``{member: score}`` (sorted sets); expiry is lazy, checked on
access, plus an amortised sweep so keys nobody reads again do not pile up.  Like Redis, a wrong
type is a programming error (``TypeError``), and ``incr`` on a non-integer is a ``ValueError``.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

SWEEP_EVERY = 1024  # writes between sweeps of expired keys


@dataclass(eq=False)
class _Entry:
    value: bytes | dict[str, float]
    expires_at: float | None = None


def _check_ttl(ttl: float) -> float:
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    return ttl


class MemoryKV:
    def __init__(self, namespace: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.namespace = namespace
        self._clock = clock
        self._data: dict[str, _Entry] = {}
        self._writes = 0

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._data.clear()

    async def ping(self) -> bool:
        return True

    # -- strings ------------------------------------------------------------------------
    async def get(self, key: str) -> bytes | None:
        entry = self._live(key)
        return self._bytes(entry) if entry is not None else None

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return [await self.get(key) for key in keys]

    async def set(
        self, key: str, value: bytes, ttl: float | None = None, *, nx: bool = False
    ) -> bool:
        expires_at = self._clock() + _check_ttl(ttl) if ttl is not None else None
        if nx and self._live(key) is not None:
            return False
        self._write(key, _Entry(bytes(value), expires_at))
        return True

    async def delete(self, *keys: str) -> int:
        removed = 0
        for key in keys:
            if self._live(key) is not None:
                del self._data[key]
                removed += 1
        return removed

    async def exists(self, key: str) -> bool:
        return self._live(key) is not None

    async def expire(self, key: str, ttl: float) -> None:
        entry = self._live(key)
        if entry is None:
            return
        if ttl <= 0:
            del self._data[key]  # as PEXPIRE with a non-positive time
        else:
            entry.expires_at = self._clock() + ttl

    async def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        expires_at = self._clock() + _check_ttl(ttl) if ttl is not None else None
        entry = self._live(key)
        if entry is None:
            entry = _Entry(b"0", expires_at)
            self._write(key, entry)
        current = self._bytes(entry)
        try:
            number = int(current) + amount
        except ValueError:
            raise ValueError("value is not an integer") from None
        entry.value = str(number).encode()
        return number

    async def append_at(self, key: str, offset: int, data: bytes, ttl: float) -> int:
        _check_ttl(ttl)
        entry = self._live(key)
        current = self._bytes(entry) if entry is not None else b""
        if len(current) != offset:
            return -len(current) - 1
        value = current + bytes(data)
        self._write(key, _Entry(value, self._clock() + ttl))
        return len(value)

    async def strlen(self, key: str) -> int:
        entry = self._live(key)
        return len(self._bytes(entry)) if entry is not None else 0

    # -- sorted sets --------------------------------------------------------------------
    async def zadd(self, key: str, member: str, score: float, ttl: float | None = None) -> None:
        entry = self._live(key)
        if entry is None:
            entry = _Entry({})
            self._write(key, entry)
        self._zset(entry)[member] = float(score)
        if ttl is not None:
            entry.expires_at = self._clock() + _check_ttl(ttl)

    async def zrem(self, key: str, member: str) -> None:
        entry = self._live(key)
        if entry is None:
            return
        members = self._zset(entry)
        members.pop(member, None)
        if not members:
            del self._data[key]  # Redis deletes an emptied set

    async def zcount_above(self, key: str, min_score: float) -> int:
        entry = self._live(key)
        if entry is None:
            return 0
        members = self._zset(entry)
        for member in [m for m, score in members.items() if score <= min_score]:
            del members[member]
        if not members:
            del self._data[key]
        return len(members)

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
        # The steps of redis.py's script, in its order.
        await self.zcount_above(key, floor)  # prunes members at or below the floor
        for gone in drop:
            await self.zrem(key, gone)
        entry = self._live(key)
        members = self._zset(entry) if entry is not None else {}
        if member not in members and len(members) >= cap:
            return False
        await self.zadd(key, member, score, ttl)
        return True

    # -- keyspace -----------------------------------------------------------------------
    async def scan(self, match: str = "*") -> AsyncIterator[str]:
        for key in list(self._data):
            if fnmatch.fnmatchcase(key, match) and self._live(key) is not None:
                yield key

    async def used_memory(self) -> int | None:
        """A rough byte count of keys and values (there is no allocator to ask)."""
        total = 0
        for key, entry in self._data.items():
            value = entry.value
            total += len(key) + (
                len(value) if isinstance(value, bytes) else sum(len(m) + 8 for m in value)
            )
        return total

    # -- internals ----------------------------------------------------------------------
    def _live(self, key: str) -> _Entry | None:
        entry = self._data.get(key)
        if entry is not None and entry.expires_at is not None and entry.expires_at <= self._clock():
            del self._data[key]
            return None
        return entry

    def _write(self, key: str, entry: _Entry) -> None:
        self._data[key] = entry
        self._writes += 1
        if self._writes % SWEEP_EVERY == 0:
            now = self._clock()
            expired = [
                k for k, e in self._data.items() if e.expires_at is not None and e.expires_at <= now
            ]
            for k in expired:
                del self._data[k]

    @staticmethod
    def _bytes(entry: _Entry) -> bytes:
        if not isinstance(entry.value, bytes):
            raise TypeError("WRONGTYPE: the key holds a sorted set")
        return entry.value

    @staticmethod
    def _zset(entry: _Entry) -> dict[str, float]:
        if isinstance(entry.value, bytes):
            raise TypeError("WRONGTYPE: the key holds a string")
        return entry.value
