"""Result cache on the KeyValue seam: namespaces with their own TTLs, hit/miss counters kept
in the store (so any node reports the cluster's numbers), zstd for values over 1 KiB.

Keys are ``cache:<namespace>:<key>``; counters ``cachestat:<namespace>:hit|miss``.
Analysis results are keyed per user (:func:`analysis_key`): the same image analysed twice by
one user is answered from the cache, but one user's upload never reveals — through a cache
hit — that another user analysed the same picture, and erasing a user is one prefix scan.
Only successful results are ever written; callers never cache failures.
"""

from __future__ import annotations

import hashlib
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


def namespace_ttls(settings: Settings) -> dict[str, float]:
    return {
        "analysis": settings.cache_ttl,
        "recommendations": settings.cache_ttl,
        "user": 3600.0,
        "config": 300.0,
        "session": float(settings.access_token_ttl),
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
        self._check(namespace)
        blob = await self.kv.get(f"cache:{namespace}:{key}")
        outcome = "miss" if blob is None else "hit"
        await self.kv.incr(f"cachestat:{namespace}:{outcome}")
        if self.metrics is not None:
            self.metrics.cache_ops.labels(namespace, outcome).inc()
        return None if blob is None else decode(blob)

    async def set(self, namespace: str, key: str, value: Any, ttl: float | None = None) -> None:
        self._check(namespace)
        await self.kv.set(f"cache:{namespace}:{key}", encode(value), ttl or self.ttls[namespace])

    async def delete(self, namespace: str, key: str) -> None:
        self._check(namespace)
        await self.kv.delete(f"cache:{namespace}:{key}")

    async def delete_prefix(self, namespace: str, prefix: str) -> int:
        self._check(namespace)
        keys = [k async for k in self.kv.scan(f"cache:{namespace}:{prefix}*")]
        return await self.kv.delete(*keys) if keys else 0

    async def stats(self) -> dict[str, dict[str, float]]:
        """Hits, misses and hit ratio per namespace, across every node sharing the store."""
        out: dict[str, dict[str, float]] = {}
        for namespace in self.ttls:
            hits = await self._count(f"cachestat:{namespace}:hit")
            misses = await self._count(f"cachestat:{namespace}:miss")
            total = hits + misses
            out[namespace] = {"hits": hits, "misses": misses, "hit_ratio": hits / total if total else 0.0}
        return out

    async def _count(self, key: str) -> int:
        raw = await self.kv.get(key)
        return int(raw) if raw else 0
