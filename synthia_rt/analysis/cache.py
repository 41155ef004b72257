"""Cache on the KeyValue seam: namespaces with their own TTLs, hit/miss counters kept in the
store (so any node reports the cluster's numbers), zstd for values over 1 KiB.

Namespaces (each with its own TTL setting; docs/coming-from-flask.md says why there are three):

* ``analysis`` — finished analysis results (``CACHE_TTL``), below;
* ``user`` — the profile and role lookups of the hot paths (:mod:`synthia_rt.auth.usercache`:
  the admin-role confirmation of every admin token, ``GET /users/profile``) (``USER_CACHE_TTL``);
* ``session`` — whether a login (refresh family) is revoked, the fallback of every access-token
  check that carries a ``sid`` (:mod:`synthia_rt.auth.revocation`) (``SESSION_CACHE_TTL``).

Keys are ``cache:<namespace>:<key>``; counters ``cachestat:<namespace>:hit|miss``.
Analysis results are keyed per user (:func:`analysis_key`): the same image analysed twice by
one user is answered from the cache, but one user's upload never reveals — through a cache
hit — that another user analysed the same picture, and erasing a user is one prefix scan.
Only successful results are ever written; callers never cache failures.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import weakref
from collections import Counter
from collections.abc import Mapping
from typing import Any

import orjson
import zstandard

from synthia_rt.kv.base import KeyValue
from synthia_rt.settings import Settings

COMPRESS_ABOVE = 1024
_RAW, _ZSTD = b"j", b"z"  # one-byte header: how the rest of the value is encoded
_COMPRESSOR = zstandard.ZstdCompressor(level=3)
_DECOMPRESSOR = zstandard.ZstdDecompressor()
COUNT_FLUSH = 1.0  # seconds a lookup's hit/miss count may wait before it reaches the store


class _Tally:
    """This process's hit/miss/time counts not yet added to the store's counters: added in one
    go at most every ``COUNT_FLUSH`` seconds (a handshake's lookups used to cost two INCRs
    each — as many round trips as the lookups themselves)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.timer: asyncio.Task[None] | None = None
        self.lock = asyncio.Lock()

    def add(self, kv: KeyValue, namespace: str, outcome: str, micros: int) -> None:
        self.counts[f"cachestat:{namespace}:{outcome}"] += 1
        self.counts[f"cachestat:{namespace}:us"] += micros
        if self.timer is None or self.timer.done():
            self.timer = asyncio.get_running_loop().create_task(self._later(kv))

    async def _later(self, kv: KeyValue) -> None:
        await asyncio.sleep(COUNT_FLUSH)
        await self.flush(kv)

    async def flush(self, kv: KeyValue) -> None:
        async with self.lock:  # a stats() reader waits for a flush in flight, too
            counts, self.counts = self.counts, Counter()
            if not counts:
                return
            try:
                await asyncio.gather(*(kv.incr(key, n) for key, n in counts.items()))
            except Exception:  # noqa: BLE001 - a lost count must not fail anything; the kv logs
                pass


# One tally per store (weakly held: a closed store's tally goes with it).
_TALLIES: weakref.WeakKeyDictionary[KeyValue, _Tally] = weakref.WeakKeyDictionary()


def _tally(kv: KeyValue) -> _Tally:
    tally = _TALLIES.get(kv)
    if tally is None:
        tally = _TALLIES[kv] = _Tally()
    return tally


async def flush_counts(kv: KeyValue) -> None:
    """Add this process's pending lookup counts to the store now (shutdown calls this)."""
    tally = _TALLIES.get(kv)
    if tally is not None:
        if tally.timer is not None:
            tally.timer.cancel()
        await tally.flush(kv)


def namespace_ttls(settings: Settings) -> dict[str, float]:
    return {
        "user": float(settings.user_cache_ttl),
        "analysis": float(settings.cache_ttl),
        "session": float(settings.session_cache_ttl),
    }


def encode(value: Any) -> bytes:
    raw = orjson.dumps(value)
    if len(raw) > COMPRESS_ABOVE:
        return _ZSTD + _COMPRESSOR.compress(raw)
    return _RAW + raw


def decode(blob: bytes) -> Any:
    if blob[:1] == _ZSTD:
        return orjson.loads(_DECOMPRESSOR.decompress(blob[1:]))
    return orjson.loads(blob[1:])


def analysis_key(user_id: str, kind: str, digest: str, model: str, prompt_version: str) -> str:
    """Cache key of one result: whose, what kind, which input, which model and prompt."""
    return f"{user_id}:{kind}:{model}:{prompt_version}:{digest}"


def answers_digest(answers: Mapping[str, str]) -> str:
    """A stable digest of quiz answers: order and letter case do not matter."""
    normal = sorted((q.strip().lower(), a.strip().lower()) for q, a in answers.items())
    return hashlib.sha256(orjson.dumps(normal)).hexdigest()


class ResultCache:
    def __init__(self, kv: KeyValue, settings: Settings, metrics: Any = None) -> None:
        self.kv = kv
        self.ttls = namespace_ttls(settings)
        self.metrics = metrics

    def _check(self, namespace: str) -> None:
        if namespace not in self.ttls:
            raise ValueError(f"unknown cache namespace {namespace!r}")

    async def get(self, namespace: str, key: str) -> Any | None:
        started = time.perf_counter()
        blob = await self.kv.get(self.storage_key(namespace, key))
        return self.take(namespace, blob, time.perf_counter() - started)

    def storage_key(self, namespace: str, key: str) -> str:
        """The store key of an entry (for callers that read it with other keys at once)."""
        self._check(namespace)
        return f"cache:{namespace}:{key}"

    def take(self, namespace: str, blob: bytes | None, elapsed: float) -> Any | None:
        """Count a lookup of ``namespace`` that read ``blob`` in ``elapsed`` seconds; its value."""
        outcome = "miss" if blob is None else "hit"
        # Counted off the caller's path, batched per process (_Tally): the outcome, and the
        # lookup time summed in microseconds across nodes (the mean is in /cache/metrics).
        # stats() adds this process's pending counts first.
        _tally(self.kv).add(self.kv, namespace, outcome, max(1, round(elapsed * 1e6)))
        if self.metrics is not None:
            self.metrics.cache_ops.labels(namespace, outcome).inc()
        return None if blob is None else decode(blob)

    async def set(
        self, namespace: str, key: str, value: Any, ttl: float | None = None, *, nx: bool = False
    ) -> bool:
        """Store ``value``; with ``nx`` only when absent (a concurrent overwrite wins)."""
        self._check(namespace)
        return await self.kv.set(
            f"cache:{namespace}:{key}", encode(value), ttl or self.ttls[namespace], nx=nx
        )

    async def delete(self, namespace: str, key: str) -> None:
        self._check(namespace)
        await self.kv.delete(f"cache:{namespace}:{key}")

    async def delete_prefix(self, namespace: str, prefix: str) -> int:
        self._check(namespace)
        keys = [k async for k in self.kv.scan(f"cache:{namespace}:{prefix}*")]
        return await self.kv.delete(*keys) if keys else 0

    async def stats(self) -> dict[str, dict[str, float]]:
        """Hits, misses, hit ratio and summed lookup time (µs) per namespace, across every node
        sharing the store."""
        await _tally(self.kv).flush(self.kv)
        out: dict[str, dict[str, float]] = {}
        for namespace in self.ttls:
            hits = await self._count(f"cachestat:{namespace}:hit")
            misses = await self._count(f"cachestat:{namespace}:miss")
            total = hits + misses
            out[namespace] = {
                "hits": hits,
                "misses": misses,
                "hit_ratio": hits / total if total else 0.0,
                "lookup_us": await self._count(f"cachestat:{namespace}:us"),
            }
        return out

    async def _count(self, key: str) -> int:
        raw = await self.kv.get(key)
        return int(raw) if raw else 0
