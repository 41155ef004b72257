"""Rate limits shared by every node: named moving-window rules on the ``limits`` library.

One :class:`Limiter` per process, on the key-value backend's storage (in-process for
``memory://``, Redis under ``<namespace>:limits:`` otherwise), so every node counts together.
Rules are written as ``limits`` strings (``"10/minute"``, ``"5 per 15 minutes"``) in settings.

Guarantees:

* ``hit`` raises ``AppError(RATE_LIMITED)`` with ``retry_after`` (whole seconds until the
  window lets one more through) past the rule; nothing else is counted for a refused hit.
* A storage failure (Redis down, timing out, refusing writes) is ``AppError(UNAVAILABLE)``:
  temporary, never a 500 and never an authentication failure.
* Keys are hashed before they reach storage: no email or IP address is written to Redis.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisClusterStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import ConfigurationError, StorageError
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError

from synthia_rt.errors import AppError, ErrorCode
from synthia_rt.redis_pool import is_cluster
from synthia_rt.settings import Settings


def rule(text: str) -> RateLimitItem:
    """Parse a ``limits`` rate string; a bad one is a start-up error (``ValueError``)."""
    try:
        return parse(text)
    except (ValueError, ConfigurationError) as exc:
        raise ValueError(f"not a rate limit: {text!r} (write e.g. '10/minute')") from exc


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def _storage(settings: Settings) -> Storage:
    url = settings.effective_redis_url
    if url.startswith("memory://"):
        return MemoryStorage()
    if is_cluster(url):
        # limits' cluster storage (redis-py's RedisCluster: it follows MOVED/ASK itself);
        # each limit key is one slot.
        return RedisClusterStorage(
            "async+" + url,
            implementation="redispy",
            key_prefix=f"{settings.redis_namespace}:limits",
            socket_timeout=2.0,
            socket_connect_timeout=2.0,
            wrap_exceptions=True,
        )
    if url.startswith("unix://"):
        uri = "async+redis+unix://" + url.removeprefix("unix://")
    else:
        uri = "async+" + url
    # A pooled connection that died with a Redis restart fails its next command; one immediate
    # retry on a fresh connection makes the first request after the restart succeed. (A
    # retried hit may count twice if the first one did reach Redis: harmless for a limit.)
    reconnect: dict[str, Any] = {
        "retry": Retry(NoBackoff(), 1),
        "retry_on_error": [RedisConnectionError],
    }
    return RedisStorage(
        uri,
        implementation="redispy",
        key_prefix=f"{settings.redis_namespace}:limits",
        socket_timeout=2.0,
        socket_connect_timeout=2.0,
        wrap_exceptions=True,
        **reconnect,
    )


@contextmanager
def _unavailable() -> Iterator[None]:
    try:
        yield
    except (StorageError, RedisError, RedisClusterException, OSError) as exc:
        # RedisClusterException (no node for a slot mid-failover) is not a RedisError.
        raise AppError(
            ErrorCode.UNAVAILABLE, "rate limit store unavailable", retry_after=1
        ) from exc


class Limiter:
    def __init__(self, settings: Settings) -> None:
        self._storage = _storage(settings)
        self._limiter = MovingWindowRateLimiter(self._storage)

    async def start(self) -> None:
        """Open the storage before the first request. redis-py's cluster client, when its
        first commands come from many requests at once, discovers the cluster while those
        use its connections and fails some of them (``AttributeError``: a writer that is
        gone — 500s on a freshly started node, 1 to 3 of 16 concurrent hits in 2 of 5 trials).
        One command first avoids it (0 of 5). An unreachable store is no start-up error here:
        hits answer ``unavailable`` until it is back."""
        if isinstance(self._storage, RedisClusterStorage):
            with contextlib.suppress(Exception):
                await self._storage.check()

    async def hit(
        self,
        item: RateLimitItem,
        scope: str,
        key: str,
        *,
        message: str = "",
        params: Mapping[str, object] | None = None,
        cost: int = 1,
    ) -> None:
        """Count ``cost`` against ``item`` for ``(scope, key)``; raise RATE_LIMITED past it
        (``message`` a msgid, its ``{placeholders}`` filled from ``params`` after translation)."""
        hashed = digest(key)
        with _unavailable():
            if await self._limiter.hit(item, scope, hashed, cost=cost):
                return
            stats = await self._limiter.get_window_stats(item, scope, hashed)
        wait = max(1, math.ceil(stats.reset_time - time.time()))
        raise AppError(
            ErrorCode.RATE_LIMITED,
            message or "Too many requests; try again later.",
            retry_after=wait,
            params=params,
        )

    async def remaining(self, item: RateLimitItem, scope: str, key: str) -> int:
        with _unavailable():
            stats = await self._limiter.get_window_stats(item, scope, digest(key))
        return int(stats.remaining)

    async def clear(self, item: RateLimitItem, scope: str, key: str) -> None:
        with _unavailable():
            await self._limiter.clear(item, scope, digest(key))

    async def close(self) -> None:
        if isinstance(self._storage, MemoryStorage):
            timer = self._storage.timer
            if timer is not None:
                timer.cancel()
        elif isinstance(self._storage, RedisStorage):
            client = getattr(self._storage.bridge, "storage", None)  # redis-py's asyncio client
            if client is not None:
                await client.aclose()
