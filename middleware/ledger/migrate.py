"""Run the Alembic migrations programmatically (used by ``flask db upgrade`` and the tests).

Alembic (with Mako, about 6 MB) is loaded when a migration runs, not when this module is imported: the
web and RQ workers import the CLI that names it but never migrate.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent.parent.parent / "migrations"


def alembic_config(database_url: str) -> Config:
    cfg = importlib.import_module("alembic.config").Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    importlib.import_module("alembic.command").upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    importlib.import_module("alembic.command").downgrade(alembic_config(database_url), revision)
