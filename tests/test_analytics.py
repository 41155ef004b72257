"""GET /admin/analytics: exact figures on a known data set, the time-zone boundary, CSV, refusals."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest

from synthia_rt.store import analytics as store_analytics
from tests.analytics_support import (
    END,
    EXPECTED_DAILY,
    EXPECTED_OUTCOMES,
    EXPECTED_SEASONS,
    EXPECTED_SHAPES,
    EXPECTED_TOTALS,
    EXPECTED_WEEKLY,
    PRICES,
    START,
    TZ,
    at,
    seed,
    unseed,
)
from tests.conftest import running_app
from tests.opshelpers import admin_in_process, bearer, register

Pair = tuple[Any, httpx.AsyncClient]
URL = "/api/v1/admin/analytics"
RANGE = {"from": START, "to": END, "tz": TZ}


@pytest.fixture
async def priced_app(settings_for: Any) -> AsyncIterator[Pair]:
    async with running_app(settings_for("redis", **PRICES)) as pair:
        yield pair


@pytest.fixture
async def seeded(pg_url: str) -> AsyncIterator[dict[str, str]]:
    users = await seed(pg_url)
    yield users
    await unseed(pg_url, users)


# after the seeded range: its days are closed, so the report reads them from the rollup
LATER = datetime(2031, 4, 1, tzinfo=UTC)


# inside the seeded range: 03-02 … 03-04 are closed in Madrid, 03-05 (today) and later open
MIDWAY = datetime(2031, 3, 5, 12, tzinfo=UTC)


@pytest.fixture(params=["live", "rolled_up", "half_closed"])
async def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, pg_url: str) -> str:
    """``live``: the seeded days are in the future (open), computed from raw rows;
    ``rolled_up``: the clock is past them, so they are built into and read from the rollup;
    ``half_closed``: the first days from the rollup, today and later live, in one report."""
    if request.param != "live":  # start from no rollup (a cache: dropping it is always correct)
        conn = await asyncpg.connect(pg_url)
        try:
            await conn.execute("DELETE FROM analytics_days")
        finally:
            await conn.close()
    if request.param == "rolled_up":
        monkeypatch.setattr(store_analytics, "now", lambda: LATER)
    elif request.param == "half_closed":
        monkeypatch.setattr(store_analytics, "now", lambda: MIDWAY)
    return str(request.param)


async def rollup(pg_url: str, tz: str) -> dict[str, datetime]:
    """The rolled-up days of the seeded range in ``tz`` and when each was built."""
    conn = await asyncpg.connect(pg_url)
    try:
        rows = await conn.fetch(
            "SELECT day, built_at FROM analytics_days WHERE tz = $1 AND day BETWEEN $2 AND $3",
            tz,
            datetime.fromisoformat(START).date(),
            datetime.fromisoformat(END).date(),
        )
    finally:
        await conn.close()
    return {r["day"].isoformat(): r["built_at"] for r in rows}


def expect_exact(body: dict[str, Any]) -> None:
    assert body["daily"] == EXPECTED_DAILY
    assert body["weekly"] == EXPECTED_WEEKLY
    assert body["outcomes"] == EXPECTED_OUTCOMES
    assert body["totals"] == EXPECTED_TOTALS
    assert body["seasons"] == EXPECTED_SEASONS
    assert body["face_shapes"] == EXPECTED_SHAPES


async def test_figures_match_the_seeded_data_exactly(
    priced_app: Pair, seeded: dict[str, str], mode: str, pg_url: str
) -> None:
    _, client = priced_app
    admin = await admin_in_process(client)
    r = await client.get(URL, params=RANGE, headers=bearer(admin["access_token"]))
    assert r.status_code == 200, r.text
    body = r.json()
    if mode != "live":  # the first request built the closed days; the second reads them
        built = await rollup(pg_url, TZ)
        closed = 7 if mode == "rolled_up" else 3
        assert sorted(built) == [d["date"] for d in EXPECTED_DAILY[:closed]]
        again = await client.get(URL, params=RANGE, headers=bearer(admin["access_token"]))
        assert again.json() == body
        assert await rollup(pg_url, TZ) == built
    assert (body["date_from"], body["date_to"], body["tz"]) == (START, END, TZ)
    assert body["prices"] == {"currency": "USD", "input_per_1m": 1.0, "output_per_1m": 10.0}
    assert body["daily"] == EXPECTED_DAILY
    assert body["weekly"] == EXPECTED_WEEKLY
    assert body["outcomes"] == EXPECTED_OUTCOMES
    assert body["totals"] == EXPECTED_TOTALS
    assert body["seasons"] == EXPECTED_SEASONS
    assert body["face_shapes"] == EXPECTED_SHAPES

    audit = await client.get(
        "/api/v1/admin/audit",
        params={"action": "admin.analytics"},
        headers=bearer(admin["access_token"]),
    )
    entry = audit.json()["items"][0]
    assert entry["actor_id"] == admin["user"]["id"]
    assert entry["detail"] == {"range_start": START, "range_end": END, "tz": TZ, "format": "json"}


async def test_days_follow_the_requested_time_zone(
    priced_app: Pair, seeded: dict[str, str], mode: str
) -> None:
    """23:30 UTC is 00:30 the next day in Madrid: the same rows land on other days in UTC."""
    _, client = priced_app
    admin = await admin_in_process(client)
    headers = bearer(admin["access_token"])
    madrid = (
        await client.get(
            URL, params={**RANGE, "from": "2031-03-03", "to": "2031-03-04"}, headers=headers
        )
    ).json()
    utc = (
        await client.get(
            URL,
            params={**RANGE, "from": "2031-03-03", "to": "2031-03-04", "tz": "UTC"},
            headers=headers,
        )
    ).json()
    assert [(d["date"], d["analyses"], d["signups"]) for d in madrid["daily"]] == [
        ("2031-03-03", 0, 0),
        ("2031-03-04", 2, 1),
    ]
    assert [(d["date"], d["analyses"], d["signups"]) for d in utc["daily"]] == [
        ("2031-03-03", 1, 1),
        ("2031-03-04", 1, 0),
    ]
    # the row at 2031-03-08 23:30 UTC is in the range in UTC, and past it in Madrid
    last_utc = (
        await client.get(
            URL, params={**RANGE, "from": END, "to": END, "tz": "UTC"}, headers=headers
        )
    ).json()
    assert last_utc["totals"]["analyses"] == 1 and last_utc["face_shapes"] == {"oval": 1}
    assert EXPECTED_DAILY[-1]["analyses"] == 0


async def test_csv_export_parses_in_the_long_format(
    priced_app: Pair, seeded: dict[str, str]
) -> None:
    _, client = priced_app
    admin = await admin_in_process(client)
    r = await client.get(
        URL, params={**RANGE, "format": "csv"}, headers=bearer(admin["access_token"])
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert f'filename="analytics-{START}-{END}.csv"' in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert set(rows[0]) == {"date", "metric", "key", "value"}
    table = {(row["date"], row["metric"], row["key"]): row["value"] for row in rows}
    for day in EXPECTED_DAILY:
        for metric, value in day.items():
            if metric != "date":
                assert table[(day["date"], metric, "")] == str(value), (day["date"], metric)
    for week in EXPECTED_WEEKLY:
        assert table[(week["week_start"], "weekly_active_users", "")] == str(week["active_users"])
    for o in EXPECTED_OUTCOMES:
        assert table[
            (o["date"], "analyses_by_outcome", f"{o['kind']}/{o['status']}/{o['error_code']}")
        ] == str(o["count"])
    for name, value in EXPECTED_TOTALS.items():
        assert table[("", f"total_{name}", "")] == str(value)
    assert {k: int(v) for (_, m, k), v in table.items() if m == "season"} == EXPECTED_SEASONS
    assert {k: int(v) for (_, m, k), v in table.items() if m == "face_shape"} == EXPECTED_SHAPES
    assert len(rows) == len(table)  # no duplicated figure


async def test_a_change_to_a_closed_day_after_rollup_is_reflected(
    priced_app: Pair, seeded: dict[str, str], pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An analysis finishing after its day closed, a new sign-in row and a deleted user all reach
    the next report: the triggers drop the rolled-up days they touch, the next request rebuilds."""
    monkeypatch.setattr(store_analytics, "now", lambda: LATER)
    _, client = priced_app
    admin = await admin_in_process(client)
    headers = bearer(admin["access_token"])
    expect_exact((await client.get(URL, params=RANGE, headers=headers)).json())
    built = await rollup(pg_url, TZ)
    assert len(built) == 7

    conn = await asyncpg.connect(pg_url)
    try:
        # the cancelled facial analysis of 03-05 is finally marked failed
        await conn.execute(
            "UPDATE analyses SET status = 'failed', error_code = 'timeout' WHERE \"user\" = $1"
            " AND status = 'cancelled'",
            uuid.UUID(str(seeded["u3"])),
        )
        # u1 signs in with a password on 03-07 (Madrid): new in that week
        await conn.execute(
            'INSERT INTO refresh_families (id, "user", current_jti, revoked, created_at, expires_at, last_used_at)'
            " VALUES ($1, $2, 'j', false, $3, $3, $3)",
            uuid.uuid4(),
            uuid.UUID(str(seeded["u1"])),
            at("2031-03-07T10:00"),
        )
    finally:
        await conn.close()
    rebuilt = await rollup(pg_url, TZ)
    assert set(rebuilt) == set(built) - {
        "2031-03-05",
        "2031-03-07",
    }  # only the touched days dropped

    body = (await client.get(URL, params=RANGE, headers=headers)).json()
    by_day = {d["date"]: d for d in body["daily"]}
    assert by_day["2031-03-07"]["active_users"] == 1
    assert {
        "date": "2031-03-05",
        "kind": "facial",
        "status": "failed",
        "error_code": "timeout",
        "count": 1,
    } in body["outcomes"]
    assert body["totals"]["active_users"] == EXPECTED_TOTALS["active_users"]
    assert body["weekly"] == [
        {"week_start": "2031-02-24", "active_users": 2},
        {"week_start": "2031-03-03", "active_users": 3},
    ]
    assert len(await rollup(pg_url, TZ)) == 7

    # u1 is deleted: their analyses and sign-ins go (cascade), and with them their figures
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("DELETE FROM users WHERE id = $1", uuid.UUID(str(seeded["u1"])))
    finally:
        await conn.close()
    body = (await client.get(URL, params=RANGE, headers=headers)).json()
    by_day = {d["date"]: d for d in body["daily"]}
    assert (by_day["2031-03-02"]["analyses"], by_day["2031-03-02"]["active_users"]) == (1, 1)
    assert by_day["2031-03-07"]["active_users"] == 0
    assert body["totals"]["active_users"] == 2


async def test_concurrent_first_requests_build_once_and_agree(
    priced_app: Pair, seeded: dict[str, str], pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two first requests at once: one builds under the advisory lock, the other waits and
    reads; both answer the figures computed live (a half-hour zone, so no UTC-hour shortcut)."""
    _, client = priced_app
    admin = await admin_in_process(client)
    headers = bearer(admin["access_token"])
    params = {**RANGE, "tz": "Asia/Kolkata"}
    live = (await client.get(URL, params=params, headers=headers)).json()
    assert (
        await rollup(pg_url, "Asia/Kolkata") == {}
    )  # the seeded days are still open: nothing built

    monkeypatch.setattr(store_analytics, "now", lambda: LATER)
    first, second = await asyncio.gather(
        client.get(URL, params=params, headers=headers),
        client.get(URL, params=params, headers=headers),
    )
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    assert first.json() == second.json() == live
    built = await rollup(pg_url, "Asia/Kolkata")
    assert len(built) == 7 and len(set(built.values())) == 1  # one build transaction


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2030-01-01", "to": "2031-01-02"}, "from"),  # 367 days
        ({"from": "2031-03-08", "to": "2031-03-02"}, "from"),
        ({"from": "2031-02-30"}, "from"),
        ({"to": "yesterday"}, "to"),
        ({"tz": "Mars/Olympus_Mons"}, "tz"),
        ({"tz": "../../etc/passwd"}, "tz"),
        ({"format": "xlsx"}, "format"),
    ],
)
async def test_invalid_ranges_and_zones_are_422(
    pg_app: Pair, params: dict[str, str], field: str
) -> None:
    _, client = pg_app
    admin = await admin_in_process(client)
    r = await client.get(URL, params=params, headers=bearer(admin["access_token"]))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "validation_error"
    assert r.json()["error"]["field"] == field


async def test_a_full_year_is_accepted(pg_app: Pair) -> None:
    _, client = pg_app
    admin = await admin_in_process(client)
    r = await client.get(
        URL,
        params={"from": "2030-01-01", "to": "2031-01-01"},
        headers=bearer(admin["access_token"]),
    )
    assert r.status_code == 200, r.text
    assert len(r.json()["daily"]) == 366


async def test_non_admins_are_refused(pg_app: Pair) -> None:
    _, client = pg_app
    user = await register(client)
    assert (await client.get(URL, params=RANGE)).status_code == 401
    r = await client.get(URL, params=RANGE, headers=bearer(user["access_token"]))
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "forbidden"


async def test_embedded_sqlite_says_analytics_needs_postgres(settings_for: Any) -> None:
    async with running_app(settings_for("memory")) as (_, client):
        admin = await admin_in_process(client)
        r = await client.get(URL, params=RANGE, headers=bearer(admin["access_token"]))
    assert r.status_code == 503
    assert "PostgreSQL" in r.json()["error"]["message"]


async def test_migration_creates_the_analytics_indexes(pg_url: str, pg_app: Pair) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        names = {r["indexname"] for r in await conn.fetch("SELECT indexname FROM pg_indexes")}
    finally:
        await conn.close()
    assert {
        "analyses_created_at_user",
        "users_created_at",
        "refresh_families_created_at",
        "push_subscriptions_created_at",
    } <= names


async def test_finished_rows_carry_the_figures_the_report_sums(pg_url: str, pg_app: Pair) -> None:
    """mark_done and cached rows copy season/face shape/tokens into columns (no JSON read per row)."""
    from synthia_rt.store import analyses

    _, client = pg_app
    user = (await register(client))["user"]["id"]
    run, hit = uuid.uuid4(), uuid.uuid4()
    await analyses.create(
        run, user, "chromatic", inputs={}, image_sha256=None, model="m", prompt_version="v"
    )
    assert await analyses.mark_running(run)
    assert await analyses.mark_done(
        run,
        result={"season": "winter", "palette": []},
        usage={"prompt_tokens": 1200, "output_tokens": 300, "thought_tokens": 40},
        duration_ms=5,
        model="m",
    )
    await analyses.create_cached(
        hit,
        user,
        "facial",
        inputs={},
        image_sha256=None,
        model="m",
        prompt_version="v",
        result={"face_shape": "heart"},
        usage={},
    )
    conn = await asyncpg.connect(pg_url)
    try:
        rows = {
            r["id"]: dict(r)
            for r in await conn.fetch(
                "SELECT id, season, face_shape, prompt_tokens, output_tokens, thought_tokens FROM analyses"
                " WHERE id = ANY($1::uuid[])",
                [run, hit],
            )
        }
    finally:
        await conn.close()
    assert rows[run] == {
        "id": run,
        "season": "winter",
        "face_shape": None,
        "prompt_tokens": 1200,
        "output_tokens": 300,
        "thought_tokens": 40,
    }
    assert rows[hit] == {
        "id": hit,
        "season": None,
        "face_shape": "heart",
        "prompt_tokens": 0,
        "output_tokens": 0,
        "thought_tokens": 0,
    }


async def test_migration_creates_the_covering_index(pg_url: str, pg_app: Pair) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        definition = await conn.fetchval(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'analyses_analytics'"
        )
    finally:
        await conn.close()
    assert definition is not None and "INCLUDE" in definition and "prompt_tokens" in definition
