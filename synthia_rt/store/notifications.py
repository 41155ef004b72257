"""Notifications: THE place they are stored (persisted before they are published live).

Two kinds of row, one list:

* a personal notification is one ``notifications`` row for its user;
* a broadcast (``POST /admin/notifications`` with ``all``) is ONE ``broadcasts`` row, whatever
  the number of users (it used to insert one row per active user: 400 users → 217 ms, linear).
  Every user created at or before it sees it; that a user read it is a ``broadcast_reads`` row,
  written only when they mark it read.

``GET /notifications`` merges both, newest first, with one keyset cursor over
``(created_at, id)`` (both queries apply the same cursor, the merge takes the first ``limit``).
The live ``notification`` event carries the stored id, so mark-read works on either kind.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from synthia_rt.store.ids import as_uuid
from synthia_rt.store.pagination import Cursor, after, next_cursor
from synthia_rt.store.tables import Broadcast, BroadcastRead, Notification, User, utcnow


@dataclass(frozen=True, slots=True)
class NotificationRecord:
    id: str
    user_id: str | None  # None: a broadcast (to everyone)
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


def _record(row: dict[str, Any], user_id: str | None) -> NotificationRecord:
    return NotificationRecord(
        id=str(row["id"]),
        user_id=user_id,
        kind=row["kind"],
        title=row["title"],
        body=row["body"],
        read=bool(row.get("read", False)),
        created_at=row["created_at"],
    )


def read_id(broadcast_id: uuid.UUID, user_id: uuid.UUID) -> uuid.UUID:
    """The primary key of "``user_id`` read ``broadcast_id``": derived, so it is unique."""
    return uuid.uuid5(broadcast_id, str(user_id))


async def create(user_id: str, kind: str, title: str, body: str) -> NotificationRecord:
    """One notification for one user."""
    uid = as_uuid(user_id)
    if uid is None:
        raise ValueError("not a user id")
    nid, now = uuid.uuid4(), utcnow()
    await Notification.insert(
        Notification(
            id=nid, user=uid, kind=kind, title=title, body=body, read=False, created_at=now
        )
    ).run()
    return NotificationRecord(str(nid), str(uid), kind, title, body, False, now)


async def create_broadcast(kind: str, title: str, body: str) -> NotificationRecord:
    """One notification for everyone: one row, O(1) in the number of users."""
    bid, now = uuid.uuid4(), utcnow()
    await Broadcast.insert(
        Broadcast(id=bid, kind=kind, title=title, body=body, created_at=now)
    ).run()
    return NotificationRecord(str(bid), None, kind, title, body, False, now)


async def _joined_at(uid: uuid.UUID) -> datetime | None:
    row = await User.select(User.created_at).where(User.id == uid).first().run()
    return None if row is None else row["created_at"]


async def page(
    user_id: str, limit: int, cursor: Cursor | None, unread_only: bool = False
) -> tuple[list[NotificationRecord], str | None]:
    uid = as_uuid(user_id)
    if uid is None:
        return [], None
    mine = (
        Notification.select()
        .where(Notification.user == uid)
        .order_by(Notification.created_at, Notification.id, ascending=False)
        .limit(limit + 1)
    )
    if unread_only:
        mine = mine.where(Notification.read == False)  # noqa: E712 - Piccolo builds SQL from ==
    if cursor is not None:
        mine = mine.where(after(cursor, Notification.created_at, Notification.id))
    rows: list[tuple[dict[str, Any], str | None]] = [(r, str(uid)) for r in await mine.run()]

    joined = await _joined_at(uid)
    if joined is not None:
        reads = BroadcastRead.select(BroadcastRead.broadcast).where(BroadcastRead.user == uid)
        everyone = (
            Broadcast.select()
            .where(Broadcast.created_at >= joined)
            .order_by(Broadcast.created_at, Broadcast.id, ascending=False)
            .limit(limit + 1)
        )
        if unread_only:
            everyone = everyone.where(Broadcast.id.not_in(reads))
        if cursor is not None:
            everyone = everyone.where(after(cursor, Broadcast.created_at, Broadcast.id))
        found = await everyone.run()
        read: set[Any] = set()
        if found and not unread_only:
            done = await reads.where(BroadcastRead.broadcast.is_in([r["id"] for r in found])).run()
            read = {r["broadcast"] for r in done}
        rows += [({**r, "read": r["id"] in read}, None) for r in found]

    rows.sort(key=lambda pair: (pair[0]["created_at"], pair[0]["id"]), reverse=True)
    rows = rows[: limit + 1]
    return [_record(r, owner) for r, owner in rows[:limit]], next_cursor(
        [r for r, _ in rows], limit
    )


async def mark_read(user_id: str, notification_id: str) -> NotificationRecord | None:
    """Mark one of the user's notifications (or a broadcast they can see) read; None when it
    is neither (or absent)."""
    nid, uid = as_uuid(notification_id), as_uuid(user_id)
    if nid is None or uid is None:
        return None
    done = (
        await Notification.update({Notification.read: True})
        .where((Notification.id == nid) & (Notification.user == uid))
        .returning(*Notification.all_columns())
        .run()
    )
    if done:
        return _record(done[0], str(uid))
    broadcast = await Broadcast.select().where(Broadcast.id == nid).first().run()
    joined = await _joined_at(uid)
    if broadcast is None or joined is None or broadcast["created_at"] < joined:
        return None
    mark = BroadcastRead(id=read_id(nid, uid), broadcast=nid, user=uid, read_at=utcnow())
    await BroadcastRead.insert(mark).on_conflict(action="DO NOTHING").run()
    return replace(_record(broadcast, None), read=True)
