"""Shared fixtures: a fresh PostgreSQL database per test run, a private Redis namespace per
test, in-process apps on either backend, and real uvicorn nodes on loopback.

Environment (defaults match the CI machine):
  TEST_PG_ADMIN_URL  postgresql://postgres@127.0.0.1:5432/postgres
  TEST_REDIS_URL     redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from synthia_rt.app import create_app, start_runtime, stop_runtime
from synthia_rt.kv import KeyValue, create_kv
from synthia_rt.settings import Settings
from tests.conftest_helpers import unique_email  # noqa: F401 - re-exported for tests
from tests.nodes import Node, start_node
from tests.redis_cluster import RedisCluster

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# A fixed random-looking key (64 base64url characters, ~384 bits): strong enough for every mode.
JWT_SECRET = "vX3q9Lr_T8mZ2cKw7NfB0yHd5sJ1uGaE4pQeR6tWjO-iYlDoUbM8nCzVkS3hFxAg"  # tests only


def _db_url(name: str) -> str:
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test run (dropped at the end)."""
    name = f"synthia_test_{os.getpid()}_{secrets.token_hex(3)}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield _db_url(name)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def namespace() -> Iterator[str]:
    """A private Redis key prefix for one test; every key under it is deleted afterwards."""
    name = f"synthia-test-{secrets.token_hex(4)}"
    yield name
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{name}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
async def redis_client(namespace: str) -> AsyncIterator[aioredis.Redis]:
    """A raw Redis client for assertions; deletes the test's namespace afterwards."""
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        yield client
    finally:
        async for key in client.scan_iter(match=f"{namespace}:*", count=1000):
            await client.delete(key)
        await client.aclose()


@pytest.fixture
def settings_for(pg_url: str, namespace: str, tmp_path: Path) -> Any:
    """``settings_for("redis")`` → PostgreSQL + Redis; ``settings_for("memory")`` → embedded."""

    def make(backend: str = "redis", **overrides: Any) -> Settings:
        if backend == "redis":
            base = Settings(
                database_url=pg_url,
                redis_url=REDIS_URL,
                redis_namespace=namespace,
                jwt_secret_key=JWT_SECRET,
                data_dir=str(tmp_path / "data"),
                log_json=False,
            )
        elif backend == "memory":
            base = Settings(
                database_url="",
                redis_url="",
                redis_namespace=namespace,
                data_dir=str(tmp_path / "data"),
                log_json=False,
            )
        else:
            raise ValueError(backend)
        # English messages unless a test asks for another language (the product default is es;
        # tests/test_i18n.py covers it)
        fast = {"argon2_memory_kib": 19 * 1024, "default_locale": "en"}
        return base.with_(**{**fast, **overrides})

    return make


@pytest.fixture(params=["redis", "memory"])
def backend(request: pytest.FixtureRequest) -> str:
    """Parametrises a test over both backends: the shared scenario suite.  Modules whose
    scenarios also run on Redis Cluster override it with :data:`WITH_CLUSTER`."""
    return str(request.param)


WITH_CLUSTER = ["redis", "memory", "cluster"]


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A private 3-primary, 3-replica Redis Cluster, started once per session on first use
    (about 7 s), for the ``cluster`` backend.  Tests that break it (failover) use their own."""
    cluster = RedisCluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def backend_url(request: pytest.FixtureRequest, backend: str) -> str:
    """The REDIS_URL of a scenario backend (starts the session's cluster when first asked)."""
    if backend == "cluster":
        cluster: RedisCluster = request.getfixturevalue("redis_cluster")
        return cluster.url
    return REDIS_URL if backend == "redis" else "memory://"


@contextlib.asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    app = create_app(settings)
    runtime = app.state.runtime
    await start_runtime(runtime)
    try:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield app, client
    finally:
        await stop_runtime(runtime)


@pytest.fixture
async def app_client(
    settings_for: Any, backend: str
) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    async with running_app(settings_for(backend)) as pair:
        yield pair


@pytest.fixture
async def pg_app(settings_for: Any) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    async with running_app(settings_for("redis")) as pair:
        yield pair


@pytest.fixture
def node_env(pg_url: str, namespace: str, tmp_path: Path) -> dict[str, str]:
    """Environment for real uvicorn nodes sharing this test's PostgreSQL and Redis."""
    return {
        "DATABASE_URL": pg_url,
        "REDIS_URL": REDIS_URL,
        "REDIS_NAMESPACE": namespace,
        "JWT_SECRET_KEY": JWT_SECRET,
        "DATA_DIR": str(tmp_path / "data"),
        "LOG_LEVEL": "WARNING",
        "DEFAULT_LOCALE": "en",  # English messages, as in settings_for
    }


@pytest.fixture
async def two_nodes(
    node_env: dict[str, str], redis_client: aioredis.Redis
) -> AsyncIterator[tuple[Node, Node]]:
    """Two real uvicorn processes on loopback sharing one Redis and one PostgreSQL."""
    a = await start_node(node_env)
    try:
        b = await start_node(node_env)
        try:
            yield a, b
        finally:
            await b.stop()
    finally:
        await a.stop()


class Live(str):
    """``host:port`` of an in-loop server; ``.app`` is its Starlette app (server-side API access)."""

    app: Any

    @property
    def runtime(self) -> Any:
        return self.app.state.runtime


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[Live]:
    """A real uvicorn server for ``create_app(settings)`` in this event loop; yields ``Live``.

    Used where the behaviour crosses the network but the backend must be in-process (memory://).
    """
    import uvicorn

    from tests.nodes import free_port

    port = free_port()
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        ws_max_size=settings.max_chunk_bytes + 24,
        ws_per_message_deflate=False,
    )
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    live = Live(f"127.0.0.1:{port}")
    live.app = app
    try:
        yield live
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def live(settings_for: Any, backend: str) -> AsyncIterator[Live]:
    """``host:port`` of a real in-loop uvicorn on the parametrised backend."""
    async with serving(settings_for(backend)) as hostport:
        yield hostport


@pytest.fixture
async def kv(
    request: pytest.FixtureRequest, backend: str, namespace: str, redis_client: aioredis.Redis
) -> AsyncIterator[KeyValue]:
    """A started key-value store on the parametrised backend, in this test's namespace."""
    store = create_kv(backend_url(request, backend), namespace)
    await store.start()
    try:
        yield store
    finally:
        await store.close()
