"""Web Push subscriptions (``push_subscriptions``): one row per browser endpoint."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from synthia_rt.store import faults
from synthia_rt.store.tables import PushSubscription, utcnow


@dataclass(frozen=True)
class Target:
    """What a delivery needs: the endpoint and the browser's RFC 8291 keys."""

    user_id: str
    endpoint: str
    p256dh: str
    auth: str

    def info(self) -> dict[str, str | dict[str, str]]:
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}}


@faults.guard
async def save(user_id: str, endpoint: str, p256dh: str, auth: str, cap: int) -> None:
    """Store (or move to this user and re-key) the endpoint; past ``cap`` the oldest go."""
    uid = uuid.UUID(user_id)
    async with PushSubscription._meta.db.transaction():
        # An endpoint is one browser profile: if another account subscribed it before (shared
        # computer, logout/login), it now belongs to the caller.
        await PushSubscription.delete().where(PushSubscription.endpoint == endpoint).run()
        await PushSubscription.insert(
            PushSubscription(
                user=uid, endpoint=endpoint, p256dh=p256dh, auth=auth, created_at=utcnow()
            )
        ).run()
        rows = (
            await PushSubscription.select(PushSubscription.id)
            .where(PushSubscription.user == uid)
            .order_by(PushSubscription.created_at, ascending=False)
            .run()
        )
        stale = [row["id"] for row in rows[max(1, cap) :]]
        if stale:
            await PushSubscription.delete().where(PushSubscription.id.is_in(stale)).run()


@faults.guard
async def remove(user_id: str, endpoint: str) -> bool:
    rows = (
        await PushSubscription.delete()
        .where(
            (PushSubscription.user == uuid.UUID(user_id)) & (PushSubscription.endpoint == endpoint)
        )
        .returning(PushSubscription.id)
        .run()
    )
    return bool(rows)


async def forget(endpoint: str) -> None:
    """The push service said the endpoint is gone (404/410): whoever owned it."""
    await PushSubscription.delete().where(PushSubscription.endpoint == endpoint).run()


async def exists(endpoint: str) -> bool:
    return bool(await PushSubscription.exists().where(PushSubscription.endpoint == endpoint).run())


def _target(row: dict[str, object]) -> Target:
    return Target(str(row["user"]), str(row["endpoint"]), str(row["p256dh"]), str(row["auth"]))


async def of_user(user_id: str) -> list[Target]:
    rows = await PushSubscription.select().where(PushSubscription.user == uuid.UUID(user_id)).run()
    return [_target(row) for row in rows]


async def everyone(after: uuid.UUID | None, limit: int = 500) -> list[tuple[uuid.UUID, Target]]:
    """All subscriptions in id order, a page at a time (broadcasts)."""
    query = PushSubscription.select().order_by(PushSubscription.id).limit(limit)
    if after is not None:
        query = query.where(PushSubscription.id > after)
    return [(row["id"], _target(row)) for row in await query.run()]
