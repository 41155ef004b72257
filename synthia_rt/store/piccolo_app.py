"""Piccolo app registration: the tables and the top-level ``piccolo_migrations`` folder."""

from __future__ import annotations

from pathlib import Path

from piccolo.conf.apps import AppConfig

from synthia_rt.store.tables import TABLES

MIGRATIONS = Path(__file__).resolve().parents[2] / "piccolo_migrations"

APP_CONFIG = AppConfig(
    app_name="synthia",
    migrations_folder_path=str(MIGRATIONS),
    table_classes=list(TABLES),
    migration_dependencies=[],
    commands=[],
)
