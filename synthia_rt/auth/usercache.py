"""The ``user`` cache namespace: a user's public record, as the hot paths read it.

Every admin token is confirmed against the user's current role (``TokenService.verify_access``)
and ``GET /users/profile`` returns the record; both read ``cache:user:<user_id>`` first and the
``users`` row only on a miss. The entry holds the public fields only — never the password hash.

Every write this service makes to a user (profile edit, password change, block/unblock, plan
change, role grant, erasure) calls :meth:`UserCache.forget` after it is committed, so the next
read is the new row. ``USER_CACHE_TTL`` bounds only edits made behind the service's back (SQL).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from synthia_rt.analysis.cache import ResultCache
from synthia_rt.kv.base import KeyValue
from synthia_rt.settings import Settings
from synthia_rt.store import users as user_store
from synthia_rt.store.users import UserRecord

NAMESPACE = "user"


def public_view(user: UserRecord) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "display_name": user.display_name,
        "role": user.role,
        "active": user.active,
        "plan": user.plan,
        "locale": user.locale,
        "created_at": user.created_at.isoformat(),
        "updated_at": user.updated_at.isoformat(),
    }


def record_of(view: dict[str, Any]) -> UserRecord:
    """A :class:`UserRecord` for reading only: ``password_hash`` is empty (never cached)."""
    return UserRecord(
        id=view["id"],
        email=view["email"],
        display_name=view["display_name"],
        role=view["role"],
        active=view["active"],
        password_hash="",
        created_at=datetime.fromisoformat(view["created_at"]),
        updated_at=datetime.fromisoformat(view["updated_at"]),
        plan=view["plan"],
        locale=view.get("locale"),  # entries written before the field read as "not saved"
    )


class UserCache:
    def __init__(self, kv: KeyValue, settings: Settings, metrics: Any = None) -> None:
        self.cache = ResultCache(kv, settings, metrics)

    async def view(self, user_id: str) -> dict[str, Any] | None:
        """The user's public fields, or None when there is no such user (never cached)."""
        cached = await self.cache.get(NAMESPACE, user_id)
        if isinstance(cached, dict):
            return cached
        user = await user_store.by_id(user_id)
        if user is None:
            return None
        view = public_view(user)
        await self.cache.set(NAMESPACE, user_id, view)
        return view

    async def record(self, user_id: str) -> UserRecord | None:
        view = await self.view(user_id)
        return None if view is None else record_of(view)

    async def role(self, user_id: str) -> str | None:
        """The current role of an active user; None when blocked or gone."""
        view = await self.view(user_id)
        return str(view["role"]) if view is not None and view["active"] else None

    async def locale(self, user_id: str) -> str | None:
        """The user's saved language (None: none saved, or no such user). Served from the
        cache: a socket handshake costs no SQL; ``set_locale`` forgets the entry."""
        cached = await self.cache.get(NAMESPACE, user_id)
        if isinstance(cached, dict) and "locale" in cached:  # entries cached before had none
            value = cached["locale"]
            return value if isinstance(value, str) else None
        view = await self.view(user_id) if not isinstance(cached, dict) else None
        if view is not None and "locale" in view:
            value = view["locale"]
            return value if isinstance(value, str) else None
        return await user_store.saved_locale(user_id)

    async def forget(self, user_id: str) -> None:
        await self.cache.delete(NAMESPACE, user_id)
