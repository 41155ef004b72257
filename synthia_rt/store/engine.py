"""Choose the Piccolo engine from the database URL; open/close pools; run migrations once.

PostgreSQL: one asyncpg pool per process, opened and closed in the Starlette lifespan.
SQLite: the embedded default (one process only).

Migrations run under a PostgreSQL advisory lock so that several processes starting at once
apply them exactly once; the others wait on the lock and then find nothing left to do.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from piccolo.engine.base import Engine
from piccolo.engine.postgres import PostgresEngine
from piccolo.engine.sqlite import SQLiteEngine
from piccolo.table import Table

from synthia_rt.settings import private_file
from synthia_rt.store.tables import TABLES

log = logging.getLogger(__name__)

MIGRATION_LOCK_ID = 0x5197_4A11  # arbitrary, constant: "synthia migrations"
_engine: Engine[Any] | None = None
_engine_url: str | None = None


def build_engine(url: str) -> Engine[Any]:
    scheme = urlparse(url).scheme
    if scheme in {"postgres", "postgresql"}:
        return PostgresEngine(config={"dsn": url}, log_queries=False)
    if scheme == "sqlite":
        path = url.removeprefix("sqlite:///").removeprefix("sqlite://")
        _private_sqlite(Path(path))
        return SQLiteEngine(path=path)
    raise ValueError(f"unsupported database URL scheme: {scheme!r}")


def _private_sqlite(path: Path) -> None:
    """The file holds emails and password hashes: 0600 (journals inherit it), in a directory
    created 0700. An existing file is tightened; an existing directory is left as it is (the
    data directory itself is made private by ``Settings.resolved_secret``)."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if str(path) in {"", ":memory:"}:
        return
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        for sibling in (
            path,
            *(path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal")),
        ):
            private_file(sibling)


def configure(url: str) -> Engine[Any]:
    """Make ``url`` this process's database for every table (and for Piccolo's migrator)."""
    global _engine, _engine_url
    if _engine is not None and _engine_url == url:
        if urlparse(url).scheme == "sqlite":  # every start re-checks the file's mode
            _private_sqlite(Path(url.removeprefix("sqlite:///").removeprefix("sqlite://")))
        return _engine
    from piccolo.apps.migrations.tables import Migration

    engine = build_engine(url)
    tables: tuple[type[Table], ...] = (*TABLES, Migration)
    for table in tables:
        table._meta.db = engine
    _engine, _engine_url = engine, url
    return engine


def current_engine() -> Engine[Any]:
    if _engine is None:
        from synthia_rt.settings import Settings

        return configure(Settings.from_env().effective_database_url)
    return _engine


def is_postgres(engine: Engine[Any]) -> bool:
    return isinstance(engine, PostgresEngine)


async def open_pool(engine: Engine[Any], max_size: int = 10) -> None:
    """One connection opened now; no floor kept afterwards (``min_size=0``): during an outage
    asyncpg would otherwise reconnect in the background and log a traceback per attempt. A
    query after the outage simply connects (:mod:`synthia_rt.store.faults` maps the outage)."""
    if isinstance(engine, PostgresEngine):
        await engine.start_connection_pool(min_size=0, init_size=1, max_size=max_size)


async def close_pool(engine: Engine[Any]) -> None:
    if isinstance(engine, PostgresEngine):
        await engine.close_connection_pool()


async def ping(engine: Engine[Any]) -> bool:
    try:
        await engine.run_ddl("SELECT 1")
        return True
    except Exception:  # noqa: BLE001 - readiness reports, it does not raise
        log.warning("database ping failed", exc_info=True)
        return False


async def _run_forwards() -> None:
    from piccolo.apps.migrations.commands.forwards import run_forwards

    result = await run_forwards(app_name="synthia", migration_id="all", fake=False)
    if not result.success:
        raise RuntimeError(f"migrations failed: {result.message}")


async def migrate(url: str) -> None:
    """Apply every pending migration; safe to call from many processes at once."""
    engine = configure(url)
    if isinstance(engine, PostgresEngine):
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
            try:
                await _run_forwards()
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
        finally:
            await conn.close()
    else:
        await _run_forwards()


async def pending_migrations(url: str) -> list[str]:
    """IDs of migrations not yet applied (``serve`` refuses to start on PostgreSQL if any)."""
    from piccolo.apps.migrations.commands.base import BaseMigrationManager
    from piccolo.apps.migrations.tables import Migration

    configure(url)
    manager = BaseMigrationManager()
    app_config = manager.get_app_config("synthia")
    all_ids = sorted(
        manager.get_migration_modules(app_config.resolved_migrations_folder_path)
    )  # IDs are timestamps
    if not await Migration.table_exists().run():
        return all_ids
    done = set(await Migration.get_migrations_which_ran(app_name="synthia"))
    return [m for m in all_ids if m not in done]
