"""Login throttling on the shared :mod:`synthia_rt.limiter`, built so strangers cannot lock an
owner out.

* per (account, client address): ``LOGIN_ATTEMPTS_PER_ACCOUNT`` per ``LOGIN_WINDOW`` — a
  guesser at one address is stopped quickly, and only that address is;
* per client address, any account: ``LOGIN_ATTEMPTS_PER_IP`` per ``LOGIN_WINDOW``;
* per account, from addresses it was never logged in from: ``LOGIN_ACCOUNT_CEILING``, slower
  rules stacked into a backoff (default 20 per 10 minutes, then 100 per day) against guessing
  spread over many addresses. An address that logged into the account (or changed its
  password) in the last 30 days is *known* and skips this ceiling, so the owner still gets in
  while the account is under a distributed attack.

Accounts are keyed by the normalised email (hashed by the limiter, and in the known-client
keys): the counters exist whether or not the account does (no enumeration), and no email or
address is written to Redis in clear.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TypeVar

from limits import RateLimitItem, RateLimitItemPerSecond, parse_many
from limits.errors import ConfigurationError

from synthia_rt.errors import AppError, ErrorCode
from synthia_rt.kv.base import KeyValue
from synthia_rt.limiter import Limiter, digest
from synthia_rt.settings import Settings

MESSAGE = "Too many login attempts; try again later."
KNOWN_CLIENT_TTL = 30 * 24 * 3600.0
T = TypeVar("T")


@functools.lru_cache(maxsize=32)
def rules(text: str) -> tuple[RateLimitItem, ...]:
    """``"20 per 10 minutes; 100 per day"`` → rules; a bad string is a start-up ``ValueError``."""
    try:
        return tuple(parse_many(text))
    except (ValueError, ConfigurationError) as exc:
        raise ValueError(
            f"not a rate limit: {text!r} (write e.g. '20/10 minutes; 100/day')"
        ) from exc


async def enforce(limiter: Limiter, text: str, scope: str, key: str, message: str) -> None:
    """Count one hit of every rule in ``text`` (a setting) for ``(scope, key)``; 429 past any."""
    for item in rules(text):
        await limiter.hit(item, scope, key, message=message)


async def _twice(op: Callable[[], Awaitable[T]]) -> T:
    """An idempotent KV call, retried once when unavailable: the KV does not retry, and its
    first command after a Redis restart may go down a pooled connection that died with it."""
    try:
        return await op()
    except AppError as exc:
        if exc.code is not ErrorCode.UNAVAILABLE:
            raise
    return await op()


def _account(email: str) -> str:
    return email.strip().lower()


class LoginThrottle:
    def __init__(self, settings: Settings, limiter: Limiter, kv: KeyValue) -> None:
        window = settings.login_window
        self._per_pair = RateLimitItemPerSecond(
            settings.login_attempts_per_account, window, namespace="login"
        )
        self._per_ip = RateLimitItemPerSecond(
            settings.login_attempts_per_ip, window, namespace="login"
        )
        self._ceiling = rules(settings.login_account_ceiling)
        self._limiter = limiter
        self._kv = kv

    def _known_key(self, account: str, ip: str | None) -> str:
        return f"login-known:{digest(account)}:{digest(ip or '-')}"

    async def hit(self, email: str, ip: str | None) -> None:
        """Count one attempt; raise RATE_LIMITED (with ``retry_after``) past any limit."""
        account = _account(email)
        await self._limiter.hit(
            self._per_pair, "account-ip", f"{account}|{ip or '-'}", message=MESSAGE
        )
        if ip:
            await self._limiter.hit(self._per_ip, "ip", ip, message=MESSAGE)
        if await _twice(lambda: self._kv.exists(self._known_key(account, ip))):
            return
        for item in self._ceiling:
            await self._limiter.hit(item, "account", account, message=MESSAGE)

    async def succeeded(self, email: str, ip: str | None) -> None:
        """The password was right: forget this address's failures and remember it as known."""
        account = _account(email)
        await self._limiter.clear(self._per_pair, "account-ip", f"{account}|{ip or '-'}")
        await _twice(lambda: self._kv.set(self._known_key(account, ip), b"1", KNOWN_CLIENT_TTL))

    async def forget(self, email: str) -> None:
        """The account is erased: drop its ceiling counters and known addresses."""
        account = _account(email)
        for item in self._ceiling:
            await self._limiter.clear(item, "account", account)
        doomed = [key async for key in self._kv.scan(f"login-known:{digest(account)}:*")]
        if doomed:
            await self._kv.delete(*doomed)
