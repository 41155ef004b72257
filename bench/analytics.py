"""``python -m bench.analytics``: the admin analytics query on 1M analyses rows (target ≤ 200 ms).

Creates a scratch PostgreSQL database, migrates it, seeds ``--users`` users (sign-ups, logins,
push opt-ins and audited plan changes spread over the year) and ``--rows`` analyses over
``--days`` days with realistic result/usage JSON through COPY (asyncpg
``copy_records_to_table``, with the analytics columns the service writes), runs ``VACUUM ANALYZE``, then times :func:`synthia_rt.store.analytics.report`
plus the response build — exactly what ``GET /admin/analytics`` runs — for the last 90 days in
Europe/Madrid: the first request (which builds the closed days' rollup) apart, then the median
of ``--runs`` warm requests (which read it). Writes ``bench/results/analytics.json`` and drops the database (``--keep`` not to).

    python -m bench.analytics                    # 1M rows, about 2 minutes on 2 cores
    python -m bench.analytics --rows 20000       # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import secrets
import statistics
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from tqdm import tqdm

from bench.accounts import copy_users
from synthia_rt.store.analyses import figures

ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
RESULTS = Path(__file__).resolve().parent / "results" / "analytics.json"
TARGET_MS = 200.0
BATCH = 50_000
TZ = "Europe/Madrid"
SHAPES = ("oval", "round", "square", "heart", "diamond", "oblong", "triangle")
SUBSEASONS = {
    "spring": "warm_spring",
    "summer": "soft_summer",
    "autumn": "deep_autumn",
    "winter": "cool_winter",
}


def _facial(shape: str) -> str:
    recs = [
        {
            "category": c,
            "title": f"{c} suggestion for an {shape} face",
            "detail": "Keep lines soft " * 6,
        }
        for c in ("hairstyle", "eyewear", "makeup", "colors", "accessories")
    ]
    return json.dumps(
        {
            "face_shape": shape,
            "skin": {"tone": "light", "undertone": "warm", "hex": "#D9A58B"},
            "recommendations": recs,
            "summary": f"An {shape} face with warm undertones. " * 3,
        }
    )


def _chromatic(season: str) -> str:
    palette = [{"name": f"Colour {i}", "hex": f"#{i * 20:02X}8844"} for i in range(10)]
    return json.dumps(
        {
            "season": season,
            "subseason": SUBSEASONS[season],
            "undertone": "warm",
            "contrast": "medium",
            "palette": palette,
            "avoid": palette[:4],
            "summary": f"A {season} palette. " * 4,
        }
    )


FACIAL = [_facial(s) for s in SHAPES]
CHROMATIC = [_chromatic(s) for s in SUBSEASONS]
PARSED = {text: json.loads(text) for text in FACIAL + CHROMATIC}


def _url(name: str) -> str:
    return f"{ADMIN_URL.rpartition('/')[0]}/{name}"


async def seed(
    url: str, rows: int, users: int, days: int, end: datetime, rng: random.Random
) -> None:
    start = end - timedelta(days=days)
    span = (end - start).total_seconds()
    conn = await asyncpg.connect(url)
    try:
        ids = [uuid.uuid4() for _ in range(users)]
        joined = [start + timedelta(seconds=rng.random() * span) for _ in ids]
        await copy_users(
            conn,
            (
                (uid, f"user{i}@bench.example", at)
                for i, (uid, at) in enumerate(zip(ids, joined, strict=True))
            ),
        )
        logins = [
            (uuid.uuid4(), rng.choice(ids), "j", False, t, t + timedelta(days=30), t)
            for _ in range(users * 3)
            for t in [start + timedelta(seconds=rng.random() * span)]
        ]
        await conn.copy_records_to_table(
            "refresh_families",
            records=logins,
            columns=[
                "id",
                "user",
                "current_jti",
                "revoked",
                "created_at",
                "expires_at",
                "last_used_at",
            ],
        )
        pushes = [
            (
                uuid.uuid4(),
                uid,
                f"https://push.example/{uid}",
                "k",
                "a",
                start + timedelta(seconds=rng.random() * span),
            )
            for uid in ids[: users // 4]
        ]
        await conn.copy_records_to_table(
            "push_subscriptions",
            records=pushes,
            columns=["id", "user", "endpoint", "p256dh", "auth", "created_at"],
        )
        plans = [
            (
                uuid.uuid4(),
                "billing.subscription",
                None,
                str(uid),
                None,
                json.dumps({"plan": plan}),
                t,
            )
            for uid in ids[: users // 10]
            for plan, t in (
                ("premium", start + timedelta(seconds=rng.random() * span / 2)),
                ("premium", start + timedelta(seconds=span / 2 + rng.random() * span / 2)),
            )
        ]
        await conn.copy_records_to_table(
            "audit_log",
            records=plans,
            columns=["id", "action", "actor_id", "subject_id", "ip", "detail", "created_at"],
        )

        columns = [
            "id",
            "user",
            "kind",
            "status",
            "inputs",
            "result",
            "cached",
            "model",
            "prompt_version",
            "usage",
            "error_code",
            "duration_ms",
            "created_at",
            "finished_at",
            "season",
            "face_shape",
            "prompt_tokens",
            "output_tokens",
            "thought_tokens",
        ]
        with tqdm(total=rows, unit="row", desc="analyses") as bar:
            for offset in range(0, rows, BATCH):
                batch = []
                for _ in range(min(BATCH, rows - offset)):
                    kind = "facial" if rng.random() < 0.55 else "chromatic"
                    roll = rng.random()
                    status, error = (
                        ("done", None)
                        if roll < 0.9
                        else ("failed", "model_error")
                        if roll < 0.96
                        else ("cancelled", None)
                    )
                    cached = status == "done" and rng.random() < 0.3
                    result = (
                        (rng.choice(FACIAL) if kind == "facial" else rng.choice(CHROMATIC))
                        if status == "done"
                        else None
                    )
                    tokens = (
                        {}
                        if cached
                        else {
                            "prompt_tokens": rng.randint(900, 1400),
                            "output_tokens": rng.randint(200, 700),
                            "thought_tokens": rng.randint(0, 300),
                            "total_tokens": 0,
                        }
                    )
                    usage = json.dumps(tokens)
                    # the columns the service writes with result/usage (store/analyses.py figures)
                    f = figures(None if result is None else PARSED[result], tokens)
                    created = start + timedelta(seconds=rng.random() * span)
                    batch.append(
                        (
                            uuid.uuid4(),
                            rng.choice(ids),
                            kind,
                            status,
                            "{}",
                            result,
                            cached,
                            "gemini-2.5-flash",
                            "v3",
                            usage,
                            error,
                            rng.randint(800, 9000),
                            created,
                            created + timedelta(seconds=5),
                            f["season"],
                            f["face_shape"],
                            f["prompt_tokens"],
                            f["output_tokens"],
                            f["thought_tokens"],
                        )
                    )
                await conn.copy_records_to_table("analyses", records=batch, columns=columns)
                bar.update(len(batch))
        # a bulk load is followed by autovacuum in production; run it now so the visibility map
        # is set and the report's index-only scans do not visit the heap
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def measure(url: str, end: date, runs: int) -> dict[str, Any]:
    from synthia_rt.rest.analytics import build
    from synthia_rt.store import analytics, engine

    db = engine.configure(url)
    await engine.open_pool(db)
    try:
        start = end - timedelta(days=89)
        prices = analytics.Prices(0.30, 2.50)
        # the first request builds the rollup of the range's closed days (every day here: the
        # seed ends before today); reported apart from the warm requests that read it
        t0 = time.perf_counter()
        first = build(await analytics.report(start, end, TZ), prices)
        build_ms = (time.perf_counter() - t0) * 1000
        times: list[float] = []
        out = None
        for _ in range(runs + 2):  # two warm-ups (pool, plans, page cache)
            t0 = time.perf_counter()
            out = build(await analytics.report(start, end, TZ), prices)
            times.append((time.perf_counter() - t0) * 1000)
        times = times[2:]
        assert out is not None and out == first  # read back from the rollup: the same figures
        conn = await asyncpg.connect(url)
        try:
            days, size = await conn.fetchrow(
                "SELECT count(*), pg_total_relation_size('analytics_days') FROM analytics_days"
            )
        finally:
            await conn.close()
        return {
            "range_days": 90,
            "from": start.isoformat(),
            "to": end.isoformat(),
            "tz": TZ,
            "runs": runs,
            "first_request_build_ms": round(build_ms, 1),
            "rollup_days": days,
            "rollup_bytes": size,
            "median_ms": round(statistics.median(times), 1),
            "min_ms": round(min(times), 1),
            "max_ms": round(max(times), 1),
            "analyses_in_range": out.totals.analyses,
        }
    finally:
        await engine.close_pool(db)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    from synthia_rt.store import engine

    name = f"synthia_bench_analytics_{secrets.token_hex(3)}"
    admin = await asyncpg.connect(ADMIN_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = _url(name)
    try:
        await engine.migrate(url)
        end = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
        t0 = time.perf_counter()
        await seed(url, args.rows, args.users, args.days, end, random.Random(16))
        seeded_s = time.perf_counter() - t0
        result = await measure(url, end.date(), args.runs)
        conn = await asyncpg.connect(url)
        try:
            server = await conn.fetchval("SHOW server_version")
        finally:
            await conn.close()
    finally:
        if not args.keep:
            admin = await asyncpg.connect(ADMIN_URL)
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
    summary = {
        "scenario": "admin analytics, GET /admin/analytics query for 90 days",
        "rows": args.rows,
        "users": args.users,
        "days_seeded": args.days,
        "seed_seconds": round(seeded_s, 1),
        **result,
        "target_ms": TARGET_MS,
        "met": result["median_ms"] <= TARGET_MS,
        "postgres": server,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    return summary


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument(
        "--no-write", action="store_true", help="print only, do not write the results file"
    )
    summary = asyncio.run(main(parser.parse_args()))
    print(json.dumps(summary, indent=2))
    if not parser.parse_args().no_write:
        RESULTS.write_text(json.dumps(summary, indent=2) + "\n")
