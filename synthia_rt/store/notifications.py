"""Notification rows: persisted before they are published on ``user:<id>``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from synthia_rt.store.ids import as_uuid
from synthia_rt.store.pagination import Cursor, after, next_cursor
from synthia_rt.store.tables import Notification, utcnow


@dataclass(frozen=True, slots=True)
class NotificationRecord:
    id: str
    user_id: str
    kind: str
    title: str
    body: str
    read: bool
    created_at: datetime

    def event_payload(self) -> dict[str, Any]:
        """The ``notification`` event body of protocol section 6."""
        return {
            "id": self.id,
            "kind": self.kind,
            "title": self.title,
            "body": self.body,
            "created_at": self.created_at.isoformat(),
        }


def _record(row: dict[str, Any]) -> NotificationRecord:
    return NotificationRecord(
        id=str(row["id"]),
        user_id=str(row["user"]),
        kind=row["kind"],
        title=row["title"],
        body=row["body"],
        read=bool(row["read"]),
        created_at=row["created_at"],
    )


async def create(user_id: str, kind: str, title: str, body: str) -> NotificationRecord:
    nid = uuid.uuid4()
    row = Notification(
        id=nid,
        user=as_uuid(user_id),
        kind=kind,
        title=title,
        body=body,
        read=False,
        created_at=utcnow(),
    )
    await Notification.insert(row).run()
    saved = await Notification.select().where(Notification.id == nid).first().run()
    assert saved is not None
    return _record(saved)


async def page(
    user_id: str, limit: int, cursor: Cursor | None, unread_only: bool = False
) -> tuple[list[NotificationRecord], str | None]:
    query = (
        Notification.select()
        .where(Notification.user == as_uuid(user_id))
        .order_by(Notification.created_at, Notification.id, ascending=False)
        .limit(limit + 1)
    )
    if unread_only:
        query = query.where(Notification.read == False)  # noqa: E712 - Piccolo builds SQL from ==
    if cursor is not None:
        query = query.where(after(cursor, Notification.created_at, Notification.id))
    rows = await query.run()
    return [_record(r) for r in rows[:limit]], next_cursor(rows, limit)


async def mark_read(user_id: str, notification_id: str) -> NotificationRecord | None:
    """Mark one of the user's notifications read; None when it is not theirs (or absent)."""
    nid, uid = as_uuid(notification_id), as_uuid(user_id)
    if nid is None or uid is None:
        return None
    done = (
        await Notification.update({Notification.read: True})
        .where((Notification.id == nid) & (Notification.user == uid))
        .returning(Notification.id)
        .run()
    )
    if not done:
        return None
    row = await Notification.select().where(Notification.id == nid).first().run()
    return None if row is None else _record(row)
