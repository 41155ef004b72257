"""What an admin broadcast costs against the number of users (issue 12 B).

    python -m bench.broadcast_cost [--users 1000,10000,100000] [--calls 20]

For each size N: a fresh PostgreSQL database, N users seeded directly with COPY (no Argon2,
no REST), an in-process app on the shared Redis (a private namespace), then ``--calls`` timed
``POST /api/v1/admin/notifications {"all": true}``; prints p50/p90 per N.  ``--legacy`` also
times the old storage (one ``notifications`` row per active user, inserted 500 at a time, as
``realtime/notify.persist_all`` did) on the same database, for the before/after figure.

Environment: BENCH_PG_ADMIN_URL (postgresql://postgres@127.0.0.1:5432/postgres),
BENCH_REDIS_URL (redis://127.0.0.1:6379/0).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime

import asyncpg
import httpx

from bench.accounts import copy_users
from synthia_rt.app import create_app, start_runtime, stop_runtime
from synthia_rt.settings import Settings
from synthia_rt.store.tables import Notification, User, utcnow

PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PASSWORD = "bench-password-xxxxxxxx"
SECRET = secrets.token_urlsafe(48)  # per run; only this process verifies tokens


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _seed(url: str, count: int) -> None:
    now = datetime.now(UTC)
    conn = await asyncpg.connect(url)
    try:
        await copy_users(
            conn, ((uuid.uuid4(), f"seed-{i}@bench.invalid", now) for i in range(count))
        )
    finally:
        await conn.close()


async def _legacy_broadcast() -> None:
    """The old storage, kept here only to measure it: one row per active user."""
    now = utcnow()
    users = await User.select(User.id).where(User.active == True).run()  # noqa: E712
    rows = [
        Notification(user=u["id"], kind="info", title="t", body="b", created_at=now) for u in users
    ]
    for start in range(0, len(rows), 500):
        await Notification.insert(*rows[start : start + 500]).run()


def _pcts(samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    return f"p50 {statistics.median(ordered) * 1000:8.1f} ms   p90 {p90 * 1000:8.1f} ms"


async def measure(users: int, calls: int, legacy: bool) -> None:
    name = f"synthia_bench_bc_{secrets.token_hex(3)}"
    await _admin(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rpartition("/")[0] + f"/{name}"
    namespace = f"bench-bc-{secrets.token_hex(3)}"
    try:
        with tempfile.TemporaryDirectory() as data:
            settings = Settings(
                database_url=url,
                redis_url=REDIS_URL,
                redis_namespace=namespace,
                jwt_secret_key=SECRET,
                data_dir=data,
                log_json=False,
                argon2_memory_kib=19 * 1024,
            )
            app = create_app(settings)
            await start_runtime(app.state.runtime)  # migrates the empty database
            try:
                await _seed(url, users)
                transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
                async with httpx.AsyncClient(
                    transport=transport, base_url="http://bench"
                ) as client:
                    email = f"admin-{secrets.token_hex(4)}@bench.invalid"
                    body = {"email": email, "password": PASSWORD}
                    r = await client.post("/api/v1/auth/register", json=body)
                    r.raise_for_status()
                    await User.update({User.role: "admin"}).where(User.email == email).run()
                    r = await client.post("/api/v1/auth/login", json=body)
                    r.raise_for_status()
                    headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
                    samples = []
                    for i in range(calls):
                        started = time.perf_counter()
                        r = await client.post(
                            "/api/v1/admin/notifications",
                            json={"all": True, "title": f"bench {i}"},
                            headers=headers,
                        )
                        samples.append(time.perf_counter() - started)
                        assert r.status_code == 201, r.text
                print(f"users {users:>7}  admin broadcast   {_pcts(samples)}", flush=True)
                if legacy:
                    old = []
                    for _ in range(min(calls, 5)):
                        started = time.perf_counter()
                        await _legacy_broadcast()
                        old.append(time.perf_counter() - started)
                    print(f"users {users:>7}  legacy row/user   {_pcts(old)}", flush=True)
            finally:
                await stop_runtime(app.state.runtime)
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", default="1000,10000,100000")
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--legacy", action="store_true")
    args = parser.parse_args()
    for users in (int(n) for n in args.users.split(",")):
        await measure(users, args.calls, args.legacy)


if __name__ == "__main__":
    asyncio.run(main())
