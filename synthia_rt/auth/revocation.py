"""Revocation state: a denylist of token ids and logins, and a per-user cutoff instant.

* ``revoked:<jti>`` — one token revoked (logout); kept until that token would expire anyway.
* ``cache:session:<sid>`` — one login (refresh family) ended by logout or refresh-token re-use:
  every access token carrying that ``sid`` is refused. The family row's ``revoked`` column is
  the source of truth; the ``session`` cache namespace keeps it either way (``true`` revoked,
  ``false`` live) for ``SESSION_CACHE_TTL``, so a lost entry (Redis restart, an admin
  invalidating the namespace) costs one primary-key read, not a resurrection. Its hits and
  misses show in ``/cache/metrics``.
* ``cutoff:<user_id>`` — every token of the user issued at or before this instant is invalid
  (password change, deletion, admin block). The database column ``users.tokens_valid_after`` is
  the source of truth; the key value store caches it so verifying a token costs no SQL, and a
  cache miss (first use, TTL, Redis loss) reloads from the database.

The cache is filled with ``nx`` so a concurrent revocation (which overwrites) always wins over
a stale read.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from synthia_rt.analysis.cache import ResultCache
from synthia_rt.kv.base import KeyValue

NO_CUTOFF = b"-"  # cached "the user has no cutoff"
CACHE_TTL = 3600.0  # seconds; the database answers again after this


# Returns the persisted cutoff (None when there is none); raises UserGone for a deleted user.
CutoffLoader = Callable[[str], Awaitable[datetime | None]]
CutoffSaver = Callable[[str, datetime], Awaitable[None]]
# Returns whether the login (refresh family) is revoked in the database.
SessionLoader = Callable[[str], Awaitable[bool]]
SESSIONS = "session"  # cache namespace


@dataclass(frozen=True, slots=True)
class RevocationState:
    """What a token check needs to know about one token, its login and its user."""

    jti_revoked: bool
    login_revoked: bool
    cutoff: float | None  # tokens of the user issued at or before this instant are invalid

    def refuses(self, issued_at: float) -> bool:
        return (
            self.jti_revoked
            or self.login_revoked
            or (self.cutoff is not None and issued_at <= self.cutoff)
        )


class Revocation:
    def __init__(
        self,
        kv: KeyValue,
        load_cutoff: CutoffLoader,
        save_cutoff: CutoffSaver,
        load_session: SessionLoader,
        cache: ResultCache,
    ) -> None:
        self._kv = kv
        self._load = load_cutoff
        self._save = save_cutoff
        self._load_session = load_session
        self._cache = cache

    async def state(self, jti: str, user_id: str, sid: str | None) -> RevocationState:
        """The token's denylist entry, its login's and its user's cutoff, read in one round
        trip (every socket connect and REST call does this); a cache miss reloads from the
        database. Raises :class:`UserGone` for a deleted user."""
        keys = [f"revoked:{jti}", f"cutoff:{user_id}"]
        if sid is not None:
            keys.append(self._cache.storage_key(SESSIONS, sid))
        started = time.perf_counter()
        raw = await self._kv.get_many(keys)
        elapsed = time.perf_counter() - started
        if raw[1] is not None:
            cutoff = None if raw[1] == NO_CUTOFF else float(raw[1])
        else:
            cutoff = await self._reload_cutoff(user_id)
        login_revoked = False
        if sid is not None:
            cached = self._cache.take(SESSIONS, raw[2], elapsed)
            if isinstance(cached, bool):
                login_revoked = cached
            else:
                login_revoked = await self._reload_session(sid)
        return RevocationState(raw[0] is not None, login_revoked, cutoff)

    async def revoke_session(self, sid: str) -> None:
        """Refuse every access token of login ``sid`` (the caller revoked its family row)."""
        await self._cache.set(SESSIONS, sid, True)

    async def _reload_session(self, sid: str) -> bool:
        revoked = await self._load_session(sid)
        # nx: a revocation written meanwhile (overwrite) wins over this possibly stale read.
        await self._cache.set(SESSIONS, sid, revoked, nx=True)
        return revoked

    async def revoke_jti(self, jti: str, exp: float) -> None:
        ttl = max(1.0, exp - time.time() + 5)  # +5 s covers clock skew between nodes
        await self._kv.set(f"revoked:{jti}", b"1", ttl)

    async def revoke_user(self, user_id: str, at: float | None = None) -> float:
        """Invalidate every token of ``user_id`` issued up to ``at`` (now); returns the cutoff."""
        cutoff = time.time() if at is None else at
        await self._save(user_id, datetime.fromtimestamp(cutoff, UTC))
        await self._kv.set(f"cutoff:{user_id}", repr(cutoff).encode(), CACHE_TTL)
        return cutoff

    async def cutoff(self, user_id: str) -> float | None:
        """The user's cutoff in unix seconds, or None; raises :class:`UserGone`."""
        key = f"cutoff:{user_id}"
        cached = await self._kv.get(key)
        if cached is not None:
            return None if cached == NO_CUTOFF else float(cached)
        return await self._reload_cutoff(user_id)

    async def _reload_cutoff(self, user_id: str) -> float | None:
        key = f"cutoff:{user_id}"
        persisted = await self._load(user_id)  # UserGone propagates and is never cached
        value = None if persisted is None else persisted.timestamp()
        await self._kv.set(
            key, NO_CUTOFF if value is None else repr(value).encode(), CACHE_TTL, nx=True
        )
        return value

    async def forget_user(self, user_id: str) -> None:
        await self._kv.delete(f"cutoff:{user_id}")
