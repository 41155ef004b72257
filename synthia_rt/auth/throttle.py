"""Login throttling per account and per client IP, on the shared :mod:`synthia_rt.limiter`.

Accounts are keyed by the normalised email (hashed by the limiter): the attempt counter exists
whether or not the account does (no enumeration), and no email is written to Redis.
"""

from __future__ import annotations

from limits import RateLimitItemPerSecond

from synthia_rt.limiter import Limiter
from synthia_rt.settings import Settings

MESSAGE = "Too many login attempts; try again later."


class LoginThrottle:
    def __init__(self, settings: Settings, limiter: Limiter) -> None:
        window = settings.login_window
        self._per_account = RateLimitItemPerSecond(
            settings.login_attempts_per_account, window, namespace="login"
        )
        self._per_ip = RateLimitItemPerSecond(
            settings.login_attempts_per_ip, window, namespace="login"
        )
        self._limiter = limiter

    async def hit(self, email: str, ip: str | None) -> None:
        """Count one attempt; raise RATE_LIMITED (with ``retry_after``) past either limit."""
        await self._limiter.hit(self._per_account, "account", email.strip().lower(), message=MESSAGE)
        if ip:
            await self._limiter.hit(self._per_ip, "ip", ip, message=MESSAGE)

    async def reset(self, email: str) -> None:
        """Forget an account's failures (after a successful login)."""
        await self._limiter.clear(self._per_account, "account", email.strip().lower())
