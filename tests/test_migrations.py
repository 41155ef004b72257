"""Migrations build the schema from nothing on both engines, and concurrent starts migrate once."""

from __future__ import annotations

import asyncio
import secrets
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from synthia_rt.store import engine as store
from synthia_rt.store.tables import TABLES
from tests.conftest import PG_ADMIN_URL, _db_url

ROOT = Path(__file__).resolve().parents[1]


def migration_ids() -> list[str]:
    from piccolo.apps.migrations.commands.base import BaseMigrationManager

    manager = BaseMigrationManager()
    folder = manager.get_app_config("synthia").resolved_migrations_folder_path
    return sorted(manager.get_migration_modules(folder).keys())


@pytest.fixture
async def fresh_pg() -> AsyncIterator[str]:
    """An empty PostgreSQL database of its own (not the session's shared one)."""
    name = f"synthia_mig_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield _db_url(name)
    finally:
        admin = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def check_schema(url: str) -> None:
    """Every table exists, is empty and readable; each migration is recorded exactly once."""
    from piccolo.apps.migrations.tables import Migration

    engine = store.configure(url)
    await store.open_pool(engine)
    try:
        for table in TABLES:
            assert await table.table_exists().run(), table._meta.tablename
            assert await table.count().run() == 0
        rows = await Migration.select(Migration.name).where(Migration.app_name == "synthia").run()
        assert sorted(r["name"] for r in rows) == migration_ids()
        assert await store.pending_migrations(url) == []
    finally:
        await store.close_pool(engine)


async def test_sqlite_from_an_empty_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    assert await store.pending_migrations(url) == migration_ids()
    await store.migrate(url)
    await check_schema(url)
    await store.migrate(url)  # a second run finds nothing to do
    await check_schema(url)


async def test_postgres_from_an_empty_database(fresh_pg: str) -> None:
    assert await store.pending_migrations(fresh_pg) == migration_ids()
    await store.migrate(fresh_pg)
    await check_schema(fresh_pg)
    await store.migrate(fresh_pg)
    await check_schema(fresh_pg)


async def test_two_processes_starting_together_migrate_once(fresh_pg: str) -> None:
    code = "import asyncio, sys; from synthia_rt.store.engine import migrate; asyncio.run(migrate(sys.argv[1]))"
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            code,
            fresh_pg,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    results = await asyncio.gather(*(p.communicate() for p in procs))
    for proc, (_, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err.decode()[-2000:]
    conn = await asyncpg.connect(fresh_pg)
    try:
        rows = await conn.fetch(
            "SELECT name, count(*) AS n FROM migration WHERE app_name = 'synthia' GROUP BY name"
        )
    finally:
        await conn.close()
    assert sorted(r["name"] for r in rows) == migration_ids()
    assert all(r["n"] == 1 for r in rows)
    await check_schema(fresh_pg)


BEFORE_ANALYTICS_COLUMNS = "2026-12-01T01:00:00:000000"


async def _legacy_rows_are_backfilled(url: str) -> None:
    """Rows written before the analytics columns existed get them from their JSON."""
    from piccolo.apps.migrations.commands.forwards import run_forwards

    from synthia_rt.store.tables import Analysis

    engine = store.configure(url)
    await store.open_pool(engine)
    try:
        assert (
            await run_forwards(app_name="synthia", migration_id=BEFORE_ANALYTICS_COLUMNS)
        ).success
        user = "6f1c1d2e-0000-4000-8000-000000000001"
        await engine.run_ddl(
            "INSERT INTO users (id, email, password_hash, display_name, role, active, created_at, updated_at, plan)"
            f" VALUES ('{user}', 'legacy@example.com', 'x', '', 'user', true, '2026-01-01T00:00:00+00:00',"
            " '2026-01-01T00:00:00+00:00', 'free')"
        )
        legacy = (
            (
                "6f1c1d2e-0000-4000-8000-00000000000a",
                "chromatic",
                '{"season": "autumn", "palette": []}',
                '{"prompt_tokens": 1000, "output_tokens": 200, "thought_tokens": 30}',
            ),
            ("6f1c1d2e-0000-4000-8000-00000000000b", "facial", '{"face_shape": "oval"}', "{}"),
            ("6f1c1d2e-0000-4000-8000-00000000000c", "facial", "NULL", '{"prompt_tokens": 500}'),
        )
        for aid, kind, result, usage in legacy:
            result_sql = result if result == "NULL" else f"'{result}'"
            await engine.run_ddl(
                'INSERT INTO analyses (id, "user", kind, status, inputs, result, cached, model, prompt_version,'
                f" usage, created_at) VALUES ('{aid}', '{user}', '{kind}', 'done', '{{}}', {result_sql}, false,"
                f" 'm', 'v', '{usage}', '2026-01-02T00:00:00+00:00')"
            )
        await store.migrate(url)
        rows = await Analysis.raw(
            "SELECT season, face_shape, prompt_tokens, output_tokens, thought_tokens FROM analyses ORDER BY id"
        ).run()
    finally:
        await store.close_pool(engine)
    assert [tuple(r.values()) for r in rows] == [
        ("autumn", None, 1000, 200, 30),
        (None, "oval", 0, 0, 0),
        (None, None, 500, 0, 0),
    ]


async def test_sqlite_backfills_the_analytics_columns(tmp_path: Path) -> None:
    await _legacy_rows_are_backfilled(f"sqlite:///{tmp_path / 'legacy.sqlite3'}")


async def test_postgres_backfills_the_analytics_columns(fresh_pg: str) -> None:
    await _legacy_rows_are_backfilled(fresh_pg)
