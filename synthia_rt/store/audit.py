"""Audit-log rows (ids, action, IP and non-personal detail only)."""

from __future__ import annotations

from typing import Any

from synthia_rt.store.tables import AuditLog, utcnow


async def insert(
    action: str,
    actor_id: str | None,
    subject_id: str | None,
    ip: str | None,
    detail: dict[str, Any],
) -> None:
    row = AuditLog(
        action=action,
        actor_id=actor_id,
        subject_id=subject_id,
        ip=ip,
        detail=detail,
        created_at=utcnow(),
    )
    await AuditLog.insert(row).run()


async def recent(action: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    query = (
        AuditLog.select()
        .output(load_json=True)
        .order_by(AuditLog.created_at, ascending=False)
        .limit(limit)
    )
    if action is not None:
        query = query.where(AuditLog.action == action)
    rows: list[dict[str, Any]] = await query.run()
    return rows
