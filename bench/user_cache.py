"""The `user` and `session` cache namespaces: what they save on the token check and the profile.

    python -m bench.user_cache [--n 2000] [--pg postgresql://postgres@127.0.0.1:5432/postgres]
                               [--redis redis://127.0.0.1:6379/0]

Starts one in-process runtime on real PostgreSQL (a scratch database, dropped afterwards) and
Redis (a scratch key namespace, deleted afterwards) and times, sequentially, ``n`` calls of:

* ``verify_access`` of an admin token (with a login ``sid``): every REST call and socket connect
  of an admin — with the `user` + `session` namespaces vs. the database lookups they replace;
* the profile read of ``GET /users/profile``: ``UserCache.record`` vs. ``users.by_id``.

Prints p50 / p95 / mean in microseconds per call. Numbers depend on the machine; compare the two
columns of one run (docs/performance.md records one).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from synthia_rt.app import start_runtime, stop_runtime
from synthia_rt.auth import tokens as token_module
from synthia_rt.auth.tokens import TokenService
from synthia_rt.runtime import Runtime
from synthia_rt.settings import Settings
from synthia_rt.store import refresh_families
from synthia_rt.store import users as user_store


async def _time(n: int, call: Callable[[], Awaitable[Any]]) -> dict[str, float]:
    for _ in range(min(50, n)):  # warm the pools and the cache entry
        await call()
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1e6)
    samples.sort()
    return {
        "p50": samples[len(samples) // 2],
        "p95": samples[int(len(samples) * 0.95)],
        "mean": statistics.fmean(samples),
    }


async def run(n: int, pg_admin: str, redis_url: str) -> dict[str, dict[str, dict[str, float]]]:
    db = f"synthia_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg_admin)
    await admin.execute(f'CREATE DATABASE "{db}"')
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        database_url=pg_admin.rsplit("/", 1)[0] + f"/{db}",
        redis_url=redis_url,
        redis_namespace=namespace,
        environment="development",
        jwt_secret_key="bench-" + uuid.uuid4().hex * 2,
        log_json=False,
    )
    runtime = Runtime(settings)
    await start_runtime(runtime)
    try:
        user = await user_store.create(f"{uuid.uuid4().hex}@bench.example", "x", role="admin")
        family = str(uuid.uuid4())
        await refresh_families.create(family, user.id, "jti", time.time() + 3600)
        cached = runtime.need_tokens()
        token, _ = cached.issue_access(user.id, "admin", session_id=family)
        uncached = TokenService(settings, runtime.need_kv(), load_role=token_module._current_role)

        async def uncached_sid(sid: str) -> bool:  # the database read the `session` entry saves
            return await token_module._family_revoked(sid)

        uncached.revocation.is_session_revoked = uncached_sid  # type: ignore[method-assign]
        users_cache = runtime.need_user_cache()
        return {
            "verify_access (admin token)": {
                "without cache": await _time(n, lambda: uncached.verify_access(token)),
                "with cache": await _time(n, lambda: cached.verify_access(token)),
            },
            "profile read (GET /users/profile)": {
                "without cache": await _time(n, lambda: user_store.by_id(user.id)),
                "with cache": await _time(n, lambda: users_cache.record(user.id)),
            },
        }
    finally:
        kv = runtime.need_kv()
        doomed = [k async for k in kv.scan("*")]
        if doomed:
            await kv.delete(*doomed)
        await stop_runtime(runtime)
        await admin.execute(f'DROP DATABASE "{db}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    results = asyncio.run(run(args.n, args.pg, args.redis))
    for what, rows in results.items():
        print(what)
        for label, stats in rows.items():
            print(
                f"  {label:14} p50 {stats['p50']:8.0f} µs  p95 {stats['p95']:8.0f} µs  mean {stats['mean']:8.0f} µs"
            )


if __name__ == "__main__":
    main()
