"""Login throttling per account and per client IP (moving window, the ``limits`` library).

Storage follows the key-value backend: in-process for ``memory://``, Redis (under
``<namespace>:limits:``) otherwise, so every node shares one count. Accounts are keyed by a
hash of the normalised email: the attempt counter exists whether or not the account does
(no enumeration), and no email is written to Redis.
"""

from __future__ import annotations

import hashlib
import math
import time

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from synthia_rt.errors import AppError, ErrorCode
from synthia_rt.settings import Settings


def _storage(settings: Settings) -> Storage:
    url = settings.effective_redis_url
    if url.startswith("memory://"):
        return MemoryStorage()
    if url.startswith("unix://"):
        uri = "async+redis+unix://" + url.removeprefix("unix://")
    else:
        uri = "async+" + url
    return RedisStorage(
        uri, implementation="redispy", key_prefix=f"{settings.redis_namespace}:limits"
    )


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


class LoginThrottle:
    def __init__(self, settings: Settings) -> None:
        window = settings.login_window
        self._per_account = RateLimitItemPerSecond(
            settings.login_attempts_per_account, window, namespace="login"
        )
        self._per_ip = RateLimitItemPerSecond(
            settings.login_attempts_per_ip, window, namespace="login"
        )
        self._storage = _storage(settings)
        self._limiter = MovingWindowRateLimiter(self._storage)

    async def hit(self, email: str, ip: str | None) -> None:
        """Count one attempt; raise RATE_LIMITED (with ``retry_after``) past either limit."""
        checks = [(self._per_account, "account", _digest(email.strip().lower()))]
        if ip:
            checks.append((self._per_ip, "ip", _digest(ip)))
        for item, scope, key in checks:
            if not await self._limiter.hit(item, scope, key):
                stats = await self._limiter.get_window_stats(item, scope, key)
                wait = max(1, math.ceil(stats.reset_time - time.time()))
                raise AppError(
                    ErrorCode.RATE_LIMITED,
                    "Too many login attempts; try again later.",
                    retry_after=wait,
                )

    async def reset(self, email: str) -> None:
        """Forget an account's failures (after a successful login)."""
        await self._limiter.clear(self._per_account, "account", _digest(email.strip().lower()))

    async def close(self) -> None:
        if isinstance(self._storage, MemoryStorage):
            timer = self._storage.timer
            if timer is not None:
                timer.cancel()
        elif isinstance(self._storage, RedisStorage):
            client = getattr(self._storage.bridge, "storage", None)  # redis-py's asyncio client
            if client is not None:
                await client.aclose()
