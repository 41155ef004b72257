"""Usage analytics for admins: SQL aggregates over a date range in one time zone (PostgreSQL).

Days are calendar days in the requested IANA zone: a row counts on the local date of its
``created_at`` (``(created_at AT TIME ZONE tz)::date``), and the range ``[from, to]`` is the
half-open instant interval ``[from 00:00 local, to + 1 day 00:00 local)``, so every query can
use a plain ``created_at`` range on its index. Weeks start on Monday (ISO) and are clipped to
the range. Definitions are documented in docs/analytics.md.

PostgreSQL only: the embedded SQLite store answers ``unavailable`` (see :class:`NeedsPostgres`).
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from piccolo.engine.postgres import PostgresEngine

from synthia_rt.store import faults
from synthia_rt.store.tables import Analysis

# Who was "active": created an analysis, or signed in with a password (a new refresh-token
# family: login or registration), on that local day. The distinct (day, user) pairs of the range,
# each user as its dense ``users.seq`` (its bit in the day's active-users bitmap): days, weeks and
# the whole range are then exact unions of per-day bitmaps, stored for closed days
# (``analytics_days``) and computed live for the open ones.
ACTIVE_SQL = """
SELECT pairs.day, array_agg(users.seq) AS seqs
FROM (
    SELECT DISTINCT (created_at AT TIME ZONE {}) ::date AS day, u FROM (
        SELECT "user" AS u, created_at FROM analyses WHERE created_at >= {} AND created_at < {}
        UNION ALL
        SELECT "user" AS u, created_at FROM refresh_families WHERE created_at >= {} AND created_at < {}
    ) AS activity
) AS pairs JOIN users ON users.id = pairs.u
GROUP BY pairs.day
"""

# One pass over the range's analyses: counts by outcome, cache hits, tokens, result labels.
# Labels and token counts are plain columns copied from ``result``/``usage`` when a row is
# written (store/analyses.py ``figures``): no JSON is decoded per row. The covering index
# ``analyses_analytics`` (migration 2026-12-01T02:00:02) makes this an index-only scan.
ANALYSES_SQL = """
SELECT (created_at AT TIME ZONE {}) ::date AS day, kind, status,
       coalesce(error_code, '') AS error_code,
       CASE WHEN status = 'done' AND kind = 'chromatic' THEN season END AS season,
       CASE WHEN status = 'done' AND kind = 'facial' THEN face_shape END AS face_shape,
       count(*) AS n,
       count(*) FILTER (WHERE cached) AS cached,
       coalesce(sum(prompt_tokens), 0) AS prompt_tokens,
       coalesce(sum(output_tokens), 0) AS output_tokens,
       coalesce(sum(thought_tokens), 0) AS thought_tokens
FROM analyses WHERE created_at >= {} AND created_at < {}
GROUP BY 1, 2, 3, 4, 5, 6
"""

SIGNUPS_SQL = """
SELECT (created_at AT TIME ZONE {})::date AS day, count(*) AS n
FROM users WHERE created_at >= {} AND created_at < {} GROUP BY 1
"""

PUSH_SQL = """
SELECT (created_at AT TIME ZONE {})::date AS day, count(*) AS n
FROM push_subscriptions WHERE created_at >= {} AND created_at < {} GROUP BY 1
"""

# A conversion is an audited plan change to premium whose previous audited plan for the same
# user was free (or that is the user's first): Stripe webhooks (``billing.subscription``) and
# admin grants (``admin.user.plan``). Renewals that keep premium are not conversions.
CONVERSIONS_SQL = """
SELECT (created_at AT TIME ZONE {})::date AS day, count(*) AS n FROM (
    SELECT created_at, detail ->> 'plan' AS plan,
           lag(detail ->> 'plan') OVER (PARTITION BY subject_id ORDER BY created_at, id) AS before
    FROM audit_log
    WHERE action IN ('billing.subscription', 'admin.user.plan') AND subject_id IS NOT NULL
      AND created_at < {}
) AS changes
WHERE plan = 'premium' AND (before IS NULL OR before = 'free') AND created_at >= {}
GROUP BY 1
"""


# The rollup of closed days (migration 2026-12-01T03:00:00): one row per (zone, local day) that
# ended before it was built, with the day's active-users bitmap and its ANALYSES_SQL groups.
# Triggers on analyses/refresh_families delete a day's rows (every zone) when a row of it
# changes; they take ROLLUP_LOCK_ID shared, a build takes it exclusively (no lost invalidation,
# no double build).
ROLLUP_LOCK_ID = 7_318_462_019  # keep in sync with the migration
BUILD_CHUNK_DAYS = 7
ROLLUP_READ_SQL = """
SELECT day, active, groups::text AS groups FROM analytics_days WHERE tz = {} AND day >= {} AND day <= {}
"""
ROLLUP_INSERT_SQL = """
INSERT INTO analytics_days (tz, day, lo, hi, active, groups)
SELECT {}, d, l, h, a, g::jsonb
FROM unnest({}::date[], {}::timestamptz[], {}::timestamptz[], {}::bytea[], {}::text[]) AS t(d, l, h, a, g)
"""
GROUP_KEYS = (
    "kind",
    "status",
    "error_code",
    "season",
    "face_shape",
    "n",
    "cached",
    "prompt_tokens",
    "output_tokens",
    "thought_tokens",
)


class NeedsPostgres(Exception):
    """Analytics aggregates are written for PostgreSQL; the embedded SQLite store has none."""


@dataclass(frozen=True)
class Prices:
    input_per_1m: float
    output_per_1m: float

    def cost(self, prompt: int, output: int) -> float:
        return (prompt * self.input_per_1m + output * self.output_per_1m) / 1_000_000


@dataclass
class Day:
    date: date
    active_users: int = 0
    signups: int = 0
    analyses: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    output_tokens: int = 0
    thought_tokens: int = 0
    conversions: int = 0
    push_optins: int = 0


@dataclass
class Report:
    start: date
    end: date
    tz: str
    days: list[Day]
    weekly_active: list[tuple[date, int]]
    active_users: int
    outcomes: list[tuple[date, str, str, str, int]]  # day, kind, status, error code, count
    seasons: dict[str, int] = field(default_factory=dict)
    face_shapes: dict[str, int] = field(default_factory=dict)


def bounds(start: date, end: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The instants ``[start 00:00, end + 1 day 00:00)`` in ``tz`` (DST-correct)."""
    return (
        datetime.combine(start, time(0), tzinfo=tz),
        datetime.combine(end + timedelta(days=1), time(0), tzinfo=tz),
    )


async def _rows(sql: str, *args: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = await Analysis.raw(sql, *args).run()
    return rows


def now() -> datetime:
    """The clock deciding which days are closed (tests move it)."""
    return datetime.now(UTC)


def bitmap(seqs: list[int]) -> bytes:
    """Little-endian bit set: bit ``seq`` on for each user number."""
    bits = bytearray((max(seqs) >> 3) + 1 if seqs else 0)
    for seq in seqs:
        bits[seq >> 3] |= 1 << (seq & 7)
    return bytes(bits)


@dataclass
class Days:
    """Per-day active-users bitmaps (as ints) and ANALYSES_SQL groups, from rollup or live."""

    active: dict[date, int] = field(default_factory=dict)
    groups: list[dict[str, Any]] = field(default_factory=list)


async def _compute(
    start: date, end: date, tz_name: str
) -> tuple[dict[date, bytes], dict[date, list[dict[str, Any]]]]:
    """Raw-row figures of ``start … end`` (the slow passes: run for open days and builds)."""
    lo, hi = bounds(start, end, ZoneInfo(tz_name))
    active_rows = await _rows(ACTIVE_SQL, tz_name, lo, hi, lo, hi)
    analyses_rows = await _rows(ANALYSES_SQL, tz_name, lo, hi)
    active = {row["day"]: bitmap(list(row["seqs"])) for row in active_rows}
    groups: dict[date, list[dict[str, Any]]] = defaultdict(list)
    for row in analyses_rows:
        groups[row["day"]].append(
            {k: int(row[k]) if k in GROUP_KEYS[5:] else row[k] for k in GROUP_KEYS}
        )
    return active, groups


async def _live(start: date, end: date, tz_name: str) -> Days:
    active, groups = await _compute(start, end, tz_name)
    return Days(
        active={day: int.from_bytes(bits, "little") for day, bits in active.items()},
        groups=[{"day": day, **g} for day, rows in groups.items() for g in rows],
    )


async def _build(start: date, end: date, tz_name: str) -> None:
    """Roll up the missing closed days of ``start … end`` under the exclusive advisory lock.

    The lock waits for writers in flight (their triggers hold it shared until they commit) and
    serialises builders: a request that waited re-reads and builds nothing already built.
    """
    tz = ZoneInfo(tz_name)
    async with Analysis._meta.db.transaction():
        await _rows("SELECT pg_advisory_xact_lock({})", ROLLUP_LOCK_ID)
        have = {
            row["day"]
            for row in await _rows(
                "SELECT day FROM analytics_days WHERE tz = {} AND day >= {} AND day <= {}",
                tz_name,
                start,
                end,
            )
        }
        missing = [d for d in _dates(start, end) if d not in have]
        if not missing:
            return
        active, groups = await _compute(missing[0], missing[-1], tz_name)
        spans = [bounds(d, d, tz) for d in missing]
        await _rows(
            ROLLUP_INSERT_SQL,
            tz_name,
            missing,
            [s[0] for s in spans],
            [s[1] for s in spans],
            [active.get(d, b"") for d in missing],
            [json.dumps(groups.get(d, [])) for d in missing],
        )


async def _closed(start: date, end: date, tz_name: str) -> Days:
    """Closed days from the rollup, building the missing ones first."""
    rows = await _rows(ROLLUP_READ_SQL, tz_name, start, end)
    if len(rows) < (end - start).days + 1:
        # a week per build transaction: writers wait for the lock at most one week's build
        for first in _dates(start, end)[::BUILD_CHUNK_DAYS]:
            await _build(first, min(first + timedelta(days=BUILD_CHUNK_DAYS - 1), end), tz_name)
        rows = await _rows(ROLLUP_READ_SQL, tz_name, start, end)
    days = Days()
    for row in rows:
        days.active[row["day"]] = int.from_bytes(row["active"], "little")
        days.groups.extend({"day": row["day"], **g} for g in json.loads(row["groups"]))
    return days


def _dates(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


async def _none() -> Days:
    return Days()


@faults.guard
async def report(start: date, end: date, tz_name: str) -> Report:
    if not isinstance(Analysis._meta.db, PostgresEngine):
        raise NeedsPostgres
    tz = ZoneInfo(tz_name)
    lo, hi = bounds(start, end, tz)
    days = {d: Day(d) for d in _dates(start, end)}
    # closed days (ended before now) come from the rollup; the rest (today) are computed live
    clock = now()
    closed = [d for d in days if bounds(d, d, tz)[1] <= clock]
    first_open = closed[-1] + timedelta(days=1) if closed else start

    # The passes are independent: run them at once on separate pool connections.
    rolled, live, signups, pushes, conversions = await asyncio.gather(
        _closed(closed[0], closed[-1], tz_name) if closed else _none(),
        _live(first_open, end, tz_name) if first_open <= end else _none(),
        _rows(SIGNUPS_SQL, tz_name, lo, hi),
        _rows(PUSH_SQL, tz_name, lo, hi),
        _rows(CONVERSIONS_SQL, tz_name, hi, lo),
    )
    for rows, attr in ((signups, "signups"), (pushes, "push_optins"), (conversions, "conversions")):
        for row in rows:
            setattr(days[row["day"]], attr, int(row["n"]))

    # active users: popcounts of per-day bitmaps and of their unions (exact distinct counts)
    active = {**rolled.active, **live.active}
    weeks: dict[date, int] = {}
    everyone = 0
    for day, bits in active.items():
        days[day].active_users = bits.bit_count()
        week = day - timedelta(days=day.weekday())
        weeks[week] = weeks.get(week, 0) | bits
        everyone |= bits
    weekly = sorted((week, bits.bit_count()) for week, bits in weeks.items() if bits)
    total_active = everyone.bit_count()

    outcomes: dict[tuple[date, str, str, str], int] = defaultdict(int)
    seasons: dict[str, int] = defaultdict(int)
    shapes: dict[str, int] = defaultdict(int)
    for row in (*rolled.groups, *live.groups):
        n = int(row["n"])
        day = days[row["day"]]
        day.analyses += n
        day.cached += int(row["cached"])
        day.prompt_tokens += int(row["prompt_tokens"])
        day.output_tokens += int(row["output_tokens"])
        day.thought_tokens += int(row["thought_tokens"])
        outcomes[(row["day"], row["kind"], row["status"], row["error_code"])] += n
        if row["season"]:
            seasons[row["season"]] += n
        if row["face_shape"]:
            shapes[row["face_shape"]] += n
    return Report(
        start=start,
        end=end,
        tz=tz_name,
        days=list(days.values()),
        weekly_active=weekly,
        active_users=total_active,
        outcomes=[(*key, n) for key, n in sorted(outcomes.items())],
        seasons=dict(sorted(seasons.items())),
        face_shapes=dict(sorted(shapes.items())),
    )
