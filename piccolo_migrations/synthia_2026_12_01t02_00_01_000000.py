"""Backfill the analytics columns added by ``2026-12-01T02:00:00`` from each row's JSON.

A separate migration because Piccolo runs a manager's raw steps before its column changes.
Same semantics as the JSON reads it replaces: ``result ->> 'season'`` / ``'face_shape'`` (NULL
when absent) and ``(usage ->> '<x>_tokens')::bigint`` (0 when absent). Only rows with a result
or a non-empty usage are rewritten (about 1M rows/minute on PostgreSQL; cached and failed rows
are mostly skipped). Idempotent: running it again writes the same values.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from synthia_rt.store.engine import current_engine, is_postgres

ID = "2026-12-01T02:00:01:000000"
VERSION = "1.38.0"
DESCRIPTION = "analyses: backfill the analytics columns from result/usage"

POSTGRES = """
UPDATE analyses SET
    season = left(result ->> 'season', 40),
    face_shape = left(result ->> 'face_shape', 40),
    prompt_tokens = coalesce((usage ->> 'prompt_tokens')::bigint, 0),
    output_tokens = coalesce((usage ->> 'output_tokens')::bigint, 0),
    thought_tokens = coalesce((usage ->> 'thought_tokens')::bigint, 0)
WHERE result IS NOT NULL OR usage::text NOT IN ('{}', 'null')
"""

SQLITE = """
UPDATE analyses SET
    season = CASE WHEN json_valid(result) THEN substr(json_extract(result, '$.season'), 1, 40) END,
    face_shape = CASE WHEN json_valid(result) THEN substr(json_extract(result, '$.face_shape'), 1, 40) END,
    prompt_tokens = CASE WHEN json_valid(usage) THEN coalesce(json_extract(usage, '$.prompt_tokens'), 0) ELSE 0 END,
    output_tokens = CASE WHEN json_valid(usage) THEN coalesce(json_extract(usage, '$.output_tokens'), 0) ELSE 0 END,
    thought_tokens = CASE WHEN json_valid(usage) THEN coalesce(json_extract(usage, '$.thought_tokens'), 0) ELSE 0 END
WHERE result IS NOT NULL OR usage NOT IN ('{}', 'null')
"""


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="synthia", description=DESCRIPTION)

    async def backfill() -> None:
        engine = current_engine()
        await engine.run_ddl(POSTGRES if is_postgres(engine) else SQLITE)

    manager.add_raw(backfill)
    return manager
