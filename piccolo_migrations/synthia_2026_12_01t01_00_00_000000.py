"""Indexes for the admin analytics (synthia_rt/store/analytics.py): every aggregate filters one
table on a ``created_at`` range.

Written as raw ``CREATE INDEX IF NOT EXISTS`` (valid on PostgreSQL and SQLite) because Piccolo
columns cannot declare a composite index. ``analyses (created_at, "user")`` lets the active-user
counts run as index-only scans; ``analyses (created_at)`` already exists.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from synthia_rt.store.engine import current_engine

ID = "2026-12-01T01:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "analytics indexes"

INDEXES = (
    ("analyses_created_at_user", 'analyses (created_at, "user")'),
    ("users_created_at", "users (created_at)"),
    ("refresh_families_created_at", "refresh_families (created_at)"),
    ("push_subscriptions_created_at", "push_subscriptions (created_at)"),
)


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="synthia", description=DESCRIPTION)

    async def create() -> None:
        engine = current_engine()
        for name, target in INDEXES:
            await engine.run_ddl(f"CREATE INDEX IF NOT EXISTS {name} ON {target}")

    async def drop() -> None:
        engine = current_engine()
        for name, _ in INDEXES:
            await engine.run_ddl(f"DROP INDEX IF EXISTS {name}")

    manager.add_raw(create)
    manager.add_raw_backwards(drop)
    return manager
