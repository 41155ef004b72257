"""Feedback rows: a user's rating (1-5) of the service or of one of their analyses."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from synthia_rt.store.ids import as_uuid
from synthia_rt.store.pagination import Cursor, after, next_cursor
from synthia_rt.store.tables import Feedback, utcnow


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    id: str
    user_id: str
    analysis_id: str | None
    rating: int
    comment: str
    created_at: datetime


def _record(row: dict[str, Any]) -> FeedbackRecord:
    analysis = row["analysis"]
    return FeedbackRecord(
        id=str(row["id"]),
        user_id=str(row["user"]),
        analysis_id=None if analysis is None else str(analysis),
        rating=int(row["rating"]),
        comment=row["comment"],
        created_at=row["created_at"],
    )


async def create(
    user_id: str, rating: int, comment: str, analysis_id: str | None
) -> FeedbackRecord:
    """The caller checks that ``analysis_id`` is the user's own analysis."""
    fid = uuid.uuid4()
    row = Feedback(
        id=fid,
        user=as_uuid(user_id),
        analysis=as_uuid(analysis_id) if analysis_id else None,
        rating=rating,
        comment=comment,
        created_at=utcnow(),
    )
    await Feedback.insert(row).run()
    saved = await Feedback.select().where(Feedback.id == fid).first().run()
    assert saved is not None
    return _record(saved)


async def page(
    user_id: str | None, limit: int, cursor: Cursor | None
) -> tuple[list[FeedbackRecord], str | None]:
    """Newest first; ``user_id=None`` lists everyone's (admins)."""
    query = (
        Feedback.select()
        .order_by(Feedback.created_at, Feedback.id, ascending=False)
        .limit(limit + 1)
    )
    if user_id is not None:
        query = query.where(Feedback.user == as_uuid(user_id))
    if cursor is not None:
        query = query.where(after(cursor, Feedback.created_at, Feedback.id))
    rows = await query.run()
    return [_record(r) for r in rows[:limit]], next_cursor(rows, limit)
