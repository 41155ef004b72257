"""A covering index for the admin analytics' analyses pass (synthia_rt/store/analytics.py
``ANALYSES_SQL``): ``(created_at) INCLUDE`` every column it reads, so a 90-day report is an
index-only scan of a narrow index instead of a read of the wide heap rows (result JSON).

PostgreSQL only (``INCLUDE``; analytics answer ``unavailable`` on SQLite anyway).
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from synthia_rt.store.engine import current_engine, is_postgres

ID = "2026-12-01T02:00:02:000000"
VERSION = "1.38.0"
DESCRIPTION = "analyses: covering index for the analytics report"

CREATE = (
    "CREATE INDEX IF NOT EXISTS analyses_analytics ON analyses (created_at) INCLUDE "
    "(kind, status, error_code, cached, season, face_shape, prompt_tokens, output_tokens, thought_tokens)"
)


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="synthia", description=DESCRIPTION)

    async def create() -> None:
        engine = current_engine()
        if is_postgres(engine):
            await engine.run_ddl(CREATE)

    async def drop() -> None:
        engine = current_engine()
        if is_postgres(engine):
            await engine.run_ddl("DROP INDEX IF EXISTS analyses_analytics")

    manager.add_raw(create)
    manager.add_raw_backwards(drop)
    return manager
