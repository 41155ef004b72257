"""Redis Cluster for the rest of the Redis users (issue 12 C): rate limits (limits'
``async+redis+cluster://`` storage) and the whole app (kv, broker, sockets) on the session's
cluster."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from synthia_rt.errors import AppError
from synthia_rt.limiter import Limiter, rule
from synthia_rt.settings import Settings
from tests.redis_cluster import RedisCluster


async def test_rate_limits_count_on_the_cluster(
    redis_cluster: RedisCluster, namespace: str
) -> None:
    limiter = Limiter(Settings(redis_url=redis_cluster.url, redis_namespace=namespace))
    try:
        limit = rule("3/minute")
        for _ in range(3):
            await limiter.hit(limit, "test", "k")
        assert await limiter.remaining(limit, "test", "k") == 0
        with pytest.raises(AppError):
            await limiter.hit(limit, "test", "k")
        await limiter.clear(limit, "test", "k")
        assert await limiter.remaining(limit, "test", "k") == 3
    finally:
        await limiter.close()


async def test_a_fresh_limiter_answers_a_burst_of_first_hits(
    redis_cluster: RedisCluster, namespace: str
) -> None:
    """A node's first requests arrive together (a deploy behind a busy balancer). redis-py's
    cluster client discovering the cluster under them failed some with AttributeError (500s;
    2 of 5 fresh clients failed 1-3 of 16 hits); the app opens the limiter's client first."""
    limit = rule("100/minute")
    for trial in range(5):
        limiter = Limiter(Settings(redis_url=redis_cluster.url, redis_namespace=namespace))
        await limiter.start()  # what the app's start-up does
        try:
            results = await asyncio.gather(
                *(limiter.hit(limit, "burst", f"{trial}-{i}") for i in range(16)),
                return_exceptions=True,
            )
            assert [r for r in results if r is not None] == []
        finally:
            await limiter.close()


async def test_the_app_runs_on_the_cluster(
    redis_cluster: RedisCluster, pg_url: str, namespace: str, tmp_path: Path
) -> None:
    from tests.conftest import JWT_SECRET, running_app
    from tests.opshelpers import admin_in_process, bearer, register

    settings = Settings(
        database_url=pg_url,
        redis_url=redis_cluster.url,
        redis_namespace=namespace,
        jwt_secret_key=JWT_SECRET,
        data_dir=str(tmp_path / "data"),
        log_json=False,
        argon2_memory_kib=19 * 1024,
    )
    async with running_app(settings) as (_, client):
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        admin = await admin_in_process(client)
        user = await register(client)
        r = await client.post(
            "/api/v1/admin/notifications",
            json={"user_id": user["user"]["id"], "title": "hi"},
            headers=bearer(admin["access_token"]),
        )
        assert r.status_code == 201, r.text
