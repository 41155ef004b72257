"""Read-only queries over analyses for the REST history and detail views."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from synthia_rt.errors import AppError
from synthia_rt.store.ids import as_uuid
from synthia_rt.store.pagination import Cursor, after, next_cursor
from synthia_rt.store.tables import Analysis


@dataclass(frozen=True, slots=True)
class AnalysisRecord:
    id: str
    user_id: str
    kind: str
    status: str
    result: dict[str, Any] | None
    cached: bool
    model: str
    error: AppError | None  # failed or cancelled: say it with .text(locale)
    duration_ms: int | None
    created_at: datetime
    finished_at: datetime | None


_COLUMNS = (
    Analysis.id,
    Analysis.user,
    Analysis.kind,
    Analysis.status,
    Analysis.result,
    Analysis.cached,
    Analysis.model,
    Analysis.error_code,
    Analysis.error_message,
    Analysis.error_source,
    Analysis.duration_ms,
    Analysis.created_at,
    Analysis.finished_at,
)


def _record(row: dict[str, Any]) -> AnalysisRecord:
    return AnalysisRecord(
        id=str(row["id"]),
        user_id=str(row["user"]),
        kind=row["kind"],
        status=row["status"],
        result=row["result"],
        cached=bool(row["cached"]),
        model=row["model"],
        error=AppError.restore(row["error_source"], row["error_code"], row["error_message"])
        if row["error_code"]
        else None,
        duration_ms=row["duration_ms"],
        created_at=row["created_at"],
        finished_at=row["finished_at"],
    )


async def page(
    user_id: str, limit: int, cursor: Cursor | None, kind: str | None = None
) -> tuple[list[AnalysisRecord], str | None]:
    query = (
        Analysis.select(*_COLUMNS)
        .output(load_json=True)
        .where(Analysis.user == as_uuid(user_id))
        .order_by(Analysis.created_at, Analysis.id, ascending=False)
        .limit(limit + 1)
    )
    if kind is not None:
        query = query.where(Analysis.kind == kind)
    if cursor is not None:
        query = query.where(after(cursor, Analysis.created_at, Analysis.id))
    rows = await query.run()
    return [_record(r) for r in rows[:limit]], next_cursor(rows, limit)


async def get(analysis_id: str) -> AnalysisRecord | None:
    aid = as_uuid(analysis_id)
    if aid is None:
        return None
    row = (
        await Analysis.select(*_COLUMNS)
        .output(load_json=True)
        .where(Analysis.id == aid)
        .first()
        .run()
    )
    return None if row is None else _record(row)


async def owned_by(analysis_id: str, user_id: str) -> bool:
    aid, uid = as_uuid(analysis_id), as_uuid(user_id)
    if aid is None or uid is None:
        return False
    return bool(await Analysis.exists().where((Analysis.id == aid) & (Analysis.user == uid)).run())
