"""Queries for analysis rows and REST-uploaded image records.

Status moves one way: ``queued → running → done | failed | cancelled`` (``queued`` may go
straight to ``failed``/``cancelled``). Every transition is a conditional UPDATE on the
current status with ``RETURNING``, so two nodes (or a cancel racing a finish) cannot both
win, and a terminal row is never reopened.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from synthia_rt.errors import AppError
from synthia_rt.store.ids import as_uuid
from synthia_rt.store.tables import Analysis, StoredImage, utcnow

OPEN = ("queued", "running")
TERMINAL = ("done", "failed", "cancelled")


def _label(result: dict[str, Any], key: str) -> str | None:
    value = result.get(key)
    return None if value is None else (value if isinstance(value, str) else str(value))[:40]


def _tokens(usage: dict[str, Any], key: str) -> int:
    return int(usage.get(key) or 0)


def figures(result: dict[str, Any] | None, usage: dict[str, Any]) -> dict[str, Any]:
    """The analytics columns of a finished row, copied from its ``result`` and ``usage`` when it
    is written (the admin report sums columns instead of decoding JSON per row; the migration
    ``2026-12-01T02:00:01`` backfilled older rows with the same rules)."""
    result = result or {}
    return {
        "season": _label(result, "season"),
        "face_shape": _label(result, "face_shape"),
        "prompt_tokens": _tokens(usage, "prompt_tokens"),
        "output_tokens": _tokens(usage, "output_tokens"),
        "thought_tokens": _tokens(usage, "thought_tokens"),
    }


async def _insert(analysis_id: uuid.UUID, user_id: str, kind: str, **columns: Any) -> None:
    await Analysis.insert(
        Analysis(id=analysis_id, user=uuid.UUID(user_id), kind=kind, created_at=utcnow(), **columns)
    ).run()


async def create(
    analysis_id: uuid.UUID,
    user_id: str,
    kind: str,
    *,
    inputs: dict[str, Any],
    image_sha256: str | None,
    model: str,
    prompt_version: str,
) -> None:
    await _insert(
        analysis_id,
        user_id,
        kind,
        status="queued",
        image_sha256=image_sha256,
        inputs=inputs,
        model=model,
        prompt_version=prompt_version,
        usage={},
    )


async def create_cached(
    analysis_id: uuid.UUID,
    user_id: str,
    kind: str,
    *,
    inputs: dict[str, Any],
    image_sha256: str | None,
    model: str,
    prompt_version: str,
    result: dict[str, Any],
    usage: dict[str, Any],
) -> None:
    """A finished row answered from the cache (committed before anyone is told)."""
    now = utcnow()
    await _insert(
        analysis_id,
        user_id,
        kind,
        status="done",
        image_sha256=image_sha256,
        inputs=inputs,
        result=result,
        cached=True,
        model=model,
        prompt_version=prompt_version,
        usage=usage,
        duration_ms=0,
        started_at=now,
        finished_at=now,
        **figures(result, usage),
    )


async def _transition(
    analysis_id: uuid.UUID, allowed: tuple[str, ...], values: dict[Any, Any]
) -> bool:
    done = (
        await Analysis.update(values)
        .where((Analysis.id == analysis_id) & Analysis.status.is_in(list(allowed)))
        .returning(Analysis.id)
        .run()
    )
    return bool(done)


async def mark_running(analysis_id: uuid.UUID) -> bool:
    """Also from ``running``: a node that took over a dead node's run (it holds the lease)."""
    return await _transition(
        analysis_id, OPEN, {Analysis.status: "running", Analysis.started_at: utcnow()}
    )


async def mark_done(
    analysis_id: uuid.UUID,
    *,
    result: dict[str, Any],
    usage: dict[str, Any],
    duration_ms: int,
    model: str,
) -> bool:
    values = {
        Analysis.status: "done",
        Analysis.result: result,
        Analysis.usage: usage,
        Analysis.duration_ms: duration_ms,
        Analysis.model: model,
        Analysis.finished_at: utcnow(),
        **{
            Analysis._meta.get_column_by_name(name): value
            for name, value in figures(result, usage).items()
        },
    }
    return await _transition(analysis_id, ("running",), values)


async def mark_failed(analysis_id: uuid.UUID, *, status: str, error: AppError) -> bool:
    """End an open analysis with ``error``: its code, its English sentence and its source
    (each reader of the row gets it in their own language)."""
    assert status in ("failed", "cancelled")
    values = {
        Analysis.status: status,
        Analysis.error_code: str(error.code),
        Analysis.error_message: error.text(),
        Analysis.error_source: error.source(),
        Analysis.finished_at: utcnow(),
    }
    return await _transition(analysis_id, OPEN, values)


async def get(analysis_id: str | uuid.UUID) -> dict[str, Any] | None:
    aid = as_uuid(analysis_id)
    if aid is None:
        return None
    row: dict[str, Any] | None = (
        await Analysis.select().where(Analysis.id == aid).first().output(load_json=True).run()
    )
    return row


async def owner(analysis_id: str | uuid.UUID) -> str | None:
    aid = as_uuid(analysis_id)
    if aid is None:
        return None
    row = await Analysis.select(Analysis.user).where(Analysis.id == aid).first().run()
    return str(row["user"]) if row else None


async def open_rows(
    created_before: datetime, created_after: datetime | None = None, limit: int = 500
) -> list[dict[str, Any]]:
    """Open (queued or running) rows created in (``created_after``, ``created_before``), oldest
    first, for the sweeper: ``id``, ``user``, ``status``, ``created_at``, ``inputs``. The lower
    bound keeps the frequent sweep a range scan of the ``created_at`` index."""
    where = Analysis.status.is_in(list(OPEN)) & (Analysis.created_at < created_before)
    if created_after is not None:
        where = where & (Analysis.created_at > created_after)
    rows: list[dict[str, Any]] = (
        await Analysis.select(
            Analysis.id, Analysis.user, Analysis.status, Analysis.created_at, Analysis.inputs
        )
        .where(where)
        .order_by(Analysis.created_at)
        .limit(limit)
        .output(load_json=True)
        .run()
    )
    return rows


async def stale_queued(created_before: datetime) -> list[tuple[uuid.UUID, str]]:
    """Queued rows older than ``created_before``: uploads that were abandoned."""
    rows = (
        await Analysis.select(Analysis.id, Analysis.user)
        .where((Analysis.status == "queued") & (Analysis.created_at < created_before))
        .limit(500)
        .run()
    )
    return [(r["id"], str(r["user"])) for r in rows]


async def stale_running(started_before: datetime) -> list[tuple[uuid.UUID, str]]:
    """Running rows that started before ``started_before``: their node died mid-analysis."""
    rows = (
        await Analysis.select(Analysis.id, Analysis.user)
        .where((Analysis.status == "running") & (Analysis.started_at < started_before))
        .limit(500)
        .run()
    )
    return [(r["id"], str(r["user"])) for r in rows]


# -- images uploaded over REST ------------------------------------------------------------
async def add_image(
    file_id: uuid.UUID,
    user_id: str,
    *,
    sha256: str,
    content_type: str,
    size: int,
    expires_at: datetime,
) -> None:
    row = StoredImage(
        id=file_id,
        user=uuid.UUID(user_id),
        sha256=sha256,
        content_type=content_type,
        size=size,
        created_at=utcnow(),
        expires_at=expires_at,
    )
    await StoredImage.insert(row).run()


async def get_image(user_id: str, file_id: str) -> dict[str, Any] | None:
    """The caller's own, unexpired image record."""
    fid, uid = as_uuid(file_id), as_uuid(user_id)
    if fid is None or uid is None:
        return None
    row: dict[str, Any] | None = (
        await StoredImage.select()
        .where(
            (StoredImage.id == fid)
            & (StoredImage.user == uid)
            & (StoredImage.expires_at > utcnow())
        )
        .first()
        .run()
    )
    return row


async def delete_image(file_id: uuid.UUID) -> None:
    await StoredImage.delete().where(StoredImage.id == file_id).run()


async def delete_user_images(user_id: str) -> int:
    uid = as_uuid(user_id)
    if uid is None:
        return 0
    gone = await StoredImage.delete().where(StoredImage.user == uid).returning(StoredImage.id).run()
    return len(gone)
