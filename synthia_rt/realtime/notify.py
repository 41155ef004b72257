"""Persisting notifications before they are delivered live, so offline users see them later."""

from __future__ import annotations

import uuid
from typing import Any

from synthia_rt.store.tables import Notification, User, utcnow


def _record(row_id: uuid.UUID, kind: str, title: str, body: str, created: Any) -> dict[str, Any]:
    return {"id": str(row_id), "kind": kind, "title": title, "body": body, "created_at": created.isoformat()}


async def persist_one(user_id: str, kind: str, title: str, body: str) -> dict[str, Any]:
    now = utcnow()
    row = Notification(user=uuid.UUID(user_id), kind=kind, title=title, body=body, created_at=now)
    await row.save()
    return _record(row.id, kind, title, body, now)


async def persist_all(kind: str, title: str, body: str) -> dict[str, Any]:
    """One row per active user; the live event carries the id of a shared announcement."""
    now = utcnow()
    announcement = uuid.uuid4()
    users = await User.select(User.id).where(User.active == True).run()  # noqa: E712 - Piccolo DSL
    rows = [
        Notification(user=u["id"], kind=kind, title=title, body=body, created_at=now) for u in users
    ]
    for start in range(0, len(rows), 500):
        await Notification.insert(*rows[start : start + 500]).run()
    return _record(announcement, kind, title, body, now)
