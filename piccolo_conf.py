"""Piccolo configuration: the engine follows DATABASE_URL (SQLite file when unset).

``DB`` is resolved lazily so that the service, the ``piccolo`` CLI and the tests all use the
engine that :func:`synthia_rt.store.engine.configure` chose for this process.
"""

from typing import Any

from piccolo.conf.apps import AppRegistry

APP_REGISTRY = AppRegistry(apps=["synthia_rt.store.piccolo_app"])


def __getattr__(name: str) -> Any:
    if name == "DB":
        from synthia_rt.store.engine import current_engine

        return current_engine()
    raise AttributeError(name)
