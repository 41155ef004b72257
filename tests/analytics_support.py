"""A small, fully known data set for the admin analytics (written straight into PostgreSQL).

The range is 2031-03-02 (a Sunday) … 2031-03-08 in Europe/Madrid (UTC+1 then), far from the
"now" other tests write at, so the figures are exact. Rows at 23:30 UTC fall on the next
Madrid day: one moves into the range's first day, one moves out past its last.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from synthia_rt.store.analyses import figures

START, END, TZ = "2031-03-02", "2031-03-08", "Europe/Madrid"
PRICES = {"model_price_input_per_1m": 1.0, "model_price_output_per_1m": 10.0}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def seed(pg_url: str) -> dict[str, str]:
    users = {name: uuid.uuid4() for name in ("u1", "u2", "u3")}
    conn = await asyncpg.connect(pg_url)
    try:
        for name, created in (
            ("u1", "2031-03-02T09:00"),
            ("u2", "2031-03-03T23:30"),
            ("u3", "2031-02-20T12:00"),
        ):
            await conn.execute(
                "INSERT INTO users (id, email, password_hash, display_name, role, active, created_at, updated_at, plan)"
                " VALUES ($1, $2, 'x', '', 'user', true, $3, $3, 'free')",
                users[name],
                f"{name}-{users[name].hex[:8]}@analytics.example",
                at(created),
            )

        async def analysis(
            user: str,
            kind: str,
            status: str,
            created: str,
            result: dict[str, Any] | None,
            usage: dict[str, int],
            cached: bool = False,
            error_code: str | None = None,
        ) -> None:
            f = figures(result, usage)  # the columns the service writes with result/usage
            await conn.execute(
                'INSERT INTO analyses (id, "user", kind, status, inputs, result, cached, model, prompt_version,'
                " usage, error_code, created_at, season, face_shape, prompt_tokens, output_tokens, thought_tokens)"
                " VALUES ($1, $2, $3, $4, '{}', $5, $6, 'gemini', 'v1', $7, $8, $9, $10, $11, $12, $13, $14)",
                uuid.uuid4(),
                users[user],
                kind,
                status,
                None if result is None else json.dumps(result),
                cached,
                json.dumps(usage),
                error_code,
                at(created),
                f["season"],
                f["face_shape"],
                f["prompt_tokens"],
                f["output_tokens"],
                f["thought_tokens"],
            )

        await analysis(
            "u1",
            "facial",
            "done",
            "2031-03-02T10:00",
            {"face_shape": "oval"},
            {"prompt_tokens": 1000, "output_tokens": 200, "thought_tokens": 50},
        )
        await analysis(
            "u1",
            "chromatic",
            "done",
            "2031-03-02T11:00",
            {"season": "autumn"},
            {"prompt_tokens": 2000, "output_tokens": 300, "thought_tokens": 0},
        )
        await analysis(
            "u3",
            "chromatic",
            "done",
            "2031-03-01T23:30",
            {"season": "winter"},  # Madrid 03-02
            {"prompt_tokens": 100, "output_tokens": 10},
        )
        await analysis(
            "u2", "facial", "done", "2031-03-03T23:30", {"face_shape": "round"}, {}, cached=True
        )
        await analysis(
            "u2",
            "chromatic",
            "failed",
            "2031-03-04T12:00",
            None,
            {"prompt_tokens": 500},
            error_code="model_error",
        )
        await analysis("u3", "facial", "cancelled", "2031-03-05T12:00", None, {})
        await analysis(
            "u1",
            "facial",
            "done",
            "2031-03-08T23:30",
            {"face_shape": "oval"},  # Madrid 03-09
            {"prompt_tokens": 7777},
        )
        await analysis(
            "u1", "facial", "done", "2031-02-27T10:00", {"face_shape": "heart"}, {}
        )  # before

        await conn.execute(  # u3 signs in with a password on 03-06 (no analysis that day)
            'INSERT INTO refresh_families (id, "user", current_jti, revoked, created_at, expires_at, last_used_at)'
            " VALUES ($1, $2, 'j', false, $3, $4, $3)",
            uuid.uuid4(),
            users["u3"],
            at("2031-03-06T08:00"),
            at("2031-03-06T08:00") + timedelta(days=30),
        )
        await conn.execute(
            'INSERT INTO push_subscriptions (id, "user", endpoint, p256dh, auth, created_at)'
            " VALUES ($1, $2, $3, 'k', 'a', $4)",
            uuid.uuid4(),
            users["u1"],
            f"https://push.example/{uuid.uuid4()}",
            at("2031-03-05T10:00"),
        )
        for user, action, plan, created in (
            (
                "u1",
                "admin.user.plan",
                "premium",
                "2031-03-03T10:00",
            ),  # conversion (first plan change)
            ("u1", "billing.subscription", "premium", "2031-03-04T10:00"),  # stays premium: not one
            ("u2", "billing.subscription", "free", "2031-02-25T10:00"),
            ("u2", "billing.subscription", "premium", "2031-03-06T10:00"),  # free → premium
            (
                "u3",
                "billing.subscription",
                "premium",
                "2031-02-26T10:00",
            ),  # converted before the range
            ("u3", "billing.subscription", "premium", "2031-03-07T10:00"),  # renewal: not one
        ):
            await conn.execute(
                "INSERT INTO audit_log (id, action, actor_id, subject_id, ip, detail, created_at)"
                " VALUES ($1, $2, NULL, $3, NULL, $4, $5)",
                uuid.uuid4(),
                action,
                str(users[user]),
                json.dumps({"plan": plan}),
                at(created),
            )
    finally:
        await conn.close()
    return {k: str(v) for k, v in users.items()}


def zero_day(day: str) -> dict[str, Any]:
    return {
        "date": day,
        "active_users": 0,
        "signups": 0,
        "analyses": 0,
        "cached": 0,
        "prompt_tokens": 0,
        "output_tokens": 0,
        "thought_tokens": 0,
        "cost_usd": 0.0,
        "conversions": 0,
        "push_optins": 0,
    }


EXPECTED_DAILY: list[dict[str, Any]] = [
    {
        **zero_day("2031-03-02"),
        "active_users": 2,
        "signups": 1,
        "analyses": 3,
        "prompt_tokens": 3100,
        "output_tokens": 510,
        "thought_tokens": 50,
        "cost_usd": 0.0087,
    },
    {**zero_day("2031-03-03"), "conversions": 1},
    {
        **zero_day("2031-03-04"),
        "active_users": 1,
        "signups": 1,
        "analyses": 2,
        "cached": 1,
        "prompt_tokens": 500,
        "cost_usd": 0.0005,
    },
    {**zero_day("2031-03-05"), "active_users": 1, "analyses": 1, "push_optins": 1},
    {**zero_day("2031-03-06"), "active_users": 1, "conversions": 1},
    zero_day("2031-03-07"),
    zero_day("2031-03-08"),
]
EXPECTED_WEEKLY = [
    {"week_start": "2031-02-24", "active_users": 2},
    {"week_start": "2031-03-03", "active_users": 2},
]
EXPECTED_OUTCOMES = [
    {"date": "2031-03-02", "kind": "chromatic", "status": "done", "error_code": "", "count": 2},
    {"date": "2031-03-02", "kind": "facial", "status": "done", "error_code": "", "count": 1},
    {
        "date": "2031-03-04",
        "kind": "chromatic",
        "status": "failed",
        "error_code": "model_error",
        "count": 1,
    },
    {"date": "2031-03-04", "kind": "facial", "status": "done", "error_code": "", "count": 1},
    {"date": "2031-03-05", "kind": "facial", "status": "cancelled", "error_code": "", "count": 1},
]
EXPECTED_TOTALS = {
    "active_users": 3,
    "signups": 2,
    "analyses": 6,
    "cached": 1,
    "prompt_tokens": 3600,
    "output_tokens": 510,
    "thought_tokens": 50,
    "cost_usd": 0.0092,
    "conversions": 2,
    "push_optins": 1,
}
EXPECTED_SEASONS = {"autumn": 1, "winter": 1}
EXPECTED_SHAPES = {"oval": 1, "round": 1}


async def unseed(pg_url: str, users: dict[str, str]) -> None:
    """Remove the data set (the session's database is shared: leave no figures behind)."""
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute(
            "DELETE FROM audit_log WHERE subject_id = ANY($1::text[])", list(users.values())
        )
        await conn.execute("DELETE FROM users WHERE id = ANY($1::uuid[])", list(users.values()))
    finally:
        await conn.close()
