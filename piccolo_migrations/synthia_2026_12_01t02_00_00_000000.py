"""analyses.season / face_shape / prompt_tokens / output_tokens / thought_tokens: copies of the
``result``/``usage`` JSON fields the admin analytics aggregate, so a report reads plain columns.

The next migration (``2026-12-01T02:00:01``) backfills them from existing rows.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Integer, Varchar
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-01T02:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "analyses: analytics columns (season, face_shape, token counts)"


def _params(default, null, **extra):
    return {
        "default": default,
        "null": null,
        "primary_key": False,
        "unique": False,
        "index": False,
        "index_method": IndexMethod.btree,
        "choices": None,
        "db_column_name": None,
        "secret": False,
        **extra,
    }


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="synthia", description=DESCRIPTION)
    for name in ("season", "face_shape"):
        manager.add_column(
            table_class_name="Analysis",
            tablename="analyses",
            column_name=name,
            db_column_name=name,
            column_class_name="Varchar",
            column_class=Varchar,
            params=_params(None, True, length=40),
            schema=None,
        )
    for name in ("prompt_tokens", "output_tokens", "thought_tokens"):
        manager.add_column(
            table_class_name="Analysis",
            tablename="analyses",
            column_name=name,
            db_column_name=name,
            column_class_name="Integer",
            column_class=Integer,
            params=_params(0, False),
            schema=None,
        )
    return manager
