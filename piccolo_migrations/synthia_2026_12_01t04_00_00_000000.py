"""analyses.error_source: a failed analysis's error as data (``AppError.source()``: code, msgid,
plural, params), so ``/history`` and a re-delivered ``analysis.error`` say it in the reader's
language. ``error_message`` keeps the English sentence, filled in; rows from before this
migration have no source and are shown from it.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import JSON
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-01T04:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "analyses: error_source (the error as data, for the reader's language)"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="synthia", description=DESCRIPTION)
    manager.add_column(
        table_class_name="Analysis",
        tablename="analyses",
        column_name="error_source",
        db_column_name="error_source",
        column_class_name="JSON",
        column_class=JSON,
        params={
            "default": None,
            "null": True,
            "primary_key": False,
            "unique": False,
            "index": False,
            "index_method": IndexMethod.btree,
            "choices": None,
            "db_column_name": None,
            "secret": False,
        },
        schema=None,
    )
    return manager
