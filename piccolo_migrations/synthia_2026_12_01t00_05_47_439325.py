from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Varchar
from piccolo.columns.indexes import IndexMethod

ID = "2026-12-01T00:05:47:439325"
VERSION = "1.38.0"
DESCRIPTION = "users.locale: the language a user chose (es | en)"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="synthia", description=DESCRIPTION)

    manager.add_column(
        table_class_name="User",
        tablename="users",
        column_name="locale",
        db_column_name="locale",
        column_class_name="Varchar",
        column_class=Varchar,
        params={
            "length": 8,
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
