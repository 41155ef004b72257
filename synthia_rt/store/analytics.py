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
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from piccolo.engine.postgres import PostgresEngine

from synthia_rt.store import faults
from synthia_rt.store.tables import Analysis

# Who was "active": created an analysis, or signed in with a password (a new refresh-token
# family: login or registration), on that local day. One pass: the distinct (day, user) pairs
# are grouped three ways at once — per day, per ISO week (Monday of the day), whole range — so
# the range is read once and each set sorted once (it used to be three scans and three sorts).
# Both sides are index-only scans of their ``(created_at, "user")`` / ``(created_at)`` indexes.
ACTIVE_SQL = """
SELECT GROUPING(day, week) AS level, day, week, count(DISTINCT u) AS n
FROM (
    SELECT day, day - (extract(isodow FROM day)::int - 1) AS week, u
    FROM (
        SELECT DISTINCT (created_at AT TIME ZONE {}) ::date AS day, u FROM (
            SELECT "user" AS u, created_at FROM analyses WHERE created_at >= {} AND created_at < {}
            UNION ALL
            SELECT "user" AS u, created_at FROM refresh_families WHERE created_at >= {} AND created_at < {}
        ) AS activity
    ) AS pairs
) AS pairs
GROUP BY GROUPING SETS ((day), (week), ())
"""
# GROUPING(day, week): 1 = the per-day rows (week not grouped), 2 = per-week rows, 3 = range.
LEVEL_DAY, LEVEL_WEEK, LEVEL_RANGE = 1, 2, 3

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


@faults.guard
async def report(start: date, end: date, tz_name: str) -> Report:
    if not isinstance(Analysis._meta.db, PostgresEngine):
        raise NeedsPostgres
    tz = ZoneInfo(tz_name)
    lo, hi = bounds(start, end, tz)
    days = {start + timedelta(days=i): Day(start + timedelta(days=i)) for i in range((end - start).days + 1)}

    # The passes are independent: run them at once on separate pool connections (the two big
    # ones, activity and analyses, then overlap instead of adding up).
    active, signups, pushes, conversions, analyses = await asyncio.gather(
        _rows(ACTIVE_SQL, tz_name, lo, hi, lo, hi),
        _rows(SIGNUPS_SQL, tz_name, lo, hi),
        _rows(PUSH_SQL, tz_name, lo, hi),
        _rows(CONVERSIONS_SQL, tz_name, hi, lo),
        _rows(ANALYSES_SQL, tz_name, lo, hi),
    )
    for rows, attr in ((signups, "signups"), (pushes, "push_optins"), (conversions, "conversions")):
        for row in rows:
            setattr(days[row["day"]], attr, int(row["n"]))
    weekly: list[tuple[date, int]] = []
    total_active = 0
    for row in active:
        level, n = int(row["level"]), int(row["n"])
        if level == LEVEL_DAY:
            days[row["day"]].active_users = n
        elif level == LEVEL_WEEK:
            weekly.append((row["week"], n))
        else:
            total_active = n
    weekly.sort()

    outcomes: dict[tuple[date, str, str, str], int] = defaultdict(int)
    seasons: dict[str, int] = defaultdict(int)
    shapes: dict[str, int] = defaultdict(int)
    for row in analyses:
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
