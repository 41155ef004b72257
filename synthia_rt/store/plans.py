"""Plans (``free`` | ``premium``) and the free plan's monthly quota of model-backed analyses.

The quota's truth is one ``usage_months`` row per (user, calendar month in UTC). A charge is a
single conditional ``UPDATE … SET used = used + 1 WHERE key = … AND used < limit RETURNING
used``: the row lock makes it atomic on PostgreSQL (and SQLite has one writer), so two nodes
starting the user's fifth and sixth analysis at the same instant cannot both pass.

What counts: every analysis the *model* is started for. Cached answers never reach
:meth:`~synthia_rt.analysis.launcher.Launcher.open` and the local analyzer is free; a start
that fails before its row is written (slot refused, database error) is refunded. A run that
fails later (model error, cancel) still counts: the model was called.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

from piccolo.custom_types import Combinable

from synthia_rt.errors import AppError, ErrorCode, counted
from synthia_rt.store import faults
from synthia_rt.store.ids import as_uuid
from synthia_rt.store.tables import UsageMonth, User, utcnow

FREE = "free"
PREMIUM = "premium"
PLANS = (FREE, PREMIUM)
LOCAL_MODEL_PREFIX = "local"  # the local analyzer's model names (analysis/local.py MODEL)


def month_of(now: datetime) -> str:
    return f"{now.astimezone(UTC):%Y-%m}"


def next_reset(now: datetime) -> datetime:
    """The first instant of the next calendar month, UTC."""
    now = now.astimezone(UTC)
    if now.month == 12:
        return datetime(now.year + 1, 1, 1, tzinfo=UTC)
    return datetime(now.year, now.month + 1, 1, tzinfo=UTC)


def _key(user_id: str, month: str) -> str:
    return f"{user_id}:{month}"


@dataclass(frozen=True)
class Usage:
    plan: str
    used: int
    limit: int | None  # None = unlimited (premium)
    resets_at: datetime


@faults.guard
async def plan_of(user_id: str) -> str | None:
    uid = as_uuid(user_id)
    if uid is None:
        return None
    row = await User.select(User.plan).where(User.id == uid).first().run()
    return None if row is None else str(row["plan"] or FREE)


@faults.guard
async def set_plan(user_id: str, plan: str) -> bool:
    """Set the effective plan; False when there is no such user."""
    if plan not in PLANS:
        raise ValueError(plan)
    uid = as_uuid(user_id)
    if uid is None:
        return False
    rows = (
        await User.update({User.plan: plan, User.updated_at: utcnow()})
        .where(User.id == uid)
        .returning(User.id)
        .run()
    )
    return bool(rows)


@faults.guard
async def usage(user_id: str, free_limit: int, now: datetime | None = None) -> Usage | None:
    now = now or utcnow()
    plan = await plan_of(user_id)
    if plan is None:
        return None
    row = (
        await UsageMonth.select(UsageMonth.used)
        .where(UsageMonth.key == _key(user_id, month_of(now)))
        .first()
        .run()
    )
    used = int(row["used"]) if row else 0
    return Usage(plan, used, None if plan == PREMIUM else free_limit, next_reset(now))


def quota_error(now: datetime, limit: int) -> AppError:
    resets_at = next_reset(now)
    return counted(
        ErrorCode.QUOTA_EXCEEDED,
        "The free plan's {n} model-backed analysis this month is used up; resets at {resets_at}. Upgrade to premium for more.",
        "The free plan's {n} model-backed analyses this month are used up; resets at {resets_at}. Upgrade to premium for more.",
        limit,
        params={"resets_at": resets_at.isoformat().replace("+00:00", "Z")},
        retry_after=max(1.0, (resets_at - now).total_seconds()),
    )


async def _ensure_row(user_id: str, month: str) -> None:
    await (
        UsageMonth.insert(
            UsageMonth(
                id=uuid.uuid4(),
                key=_key(user_id, month),
                user=uuid.UUID(user_id),
                month=month,
                used=0,
            )
        )
        .on_conflict(target=UsageMonth.key, action="DO NOTHING")
        .run()
    )


@faults.guard
async def charge(user_id: str, free_limit: int, now: datetime | None = None) -> str:
    """Count one model-backed analysis for this month; ``quota_exceeded`` when a free user has
    none left. Returns the month charged (for :func:`refund`)."""
    now = now or utcnow()
    month = month_of(now)
    plan = await plan_of(user_id)
    await _ensure_row(user_id, month)
    where: Combinable = UsageMonth.key == _key(user_id, month)
    if plan != PREMIUM:
        where = where & (UsageMonth.used < free_limit)
    rows = (
        await UsageMonth.update({UsageMonth.used: UsageMonth.used + 1})
        .where(where)
        .returning(UsageMonth.used)
        .run()
    )
    if not rows:
        raise quota_error(now, free_limit)
    return month


@faults.guard
async def refund(user_id: str, month: str) -> None:
    await (
        UsageMonth.update({UsageMonth.used: UsageMonth.used - 1})
        .where((UsageMonth.key == _key(user_id, month)) & (UsageMonth.used > 0))
        .run()
    )


@contextlib.asynccontextmanager
async def charged(user_id: str, model: str, free_limit: int) -> AsyncIterator[None]:
    """Charge one analysis by ``model`` for the block; refunded if the block raises.

    The local analyzer (``model`` ``local…``) is free and never charged."""
    if model.startswith(LOCAL_MODEL_PREFIX):
        yield
        return
    month = await charge(user_id, free_limit)
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            await refund(user_id, month)
        raise
