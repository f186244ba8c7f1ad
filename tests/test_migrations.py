"""Alembic: one head, and `upgrade` builds the schema the models describe on an empty database."""

from pathlib import Path

import pytest
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory
from flask_migrate import upgrade
from sqlalchemy import create_engine, inspect

from app import create_app
from app.extensions import db
from config import TestConfig

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def test_single_head():
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    heads = ScriptDirectory.from_config(config).get_heads()
    assert len(heads) == 1, heads


@pytest.mark.services  # migrates a SQLite database of its own
def test_upgrade_on_empty_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    app = create_app(TestConfig, {"SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        upgrade(directory=str(MIGRATIONS))
    inspector = inspect(create_engine(url))
    assert set(db.metadata.tables) <= set(inspector.get_table_names())
    for name, table in db.metadata.tables.items():  # every column the models name, too
        built = {column["name"] for column in inspector.get_columns(name)}
        assert {column.name for column in table.columns} <= built, name


def test_session_database_is_at_head(app):
    """The session database (PostgreSQL in CI) was built by the same upgrade."""
    with app.app_context():
        tables = set(inspect(db.engine).get_table_names())
        assert "alembic_version" in tables
        assert set(db.metadata.tables) <= tables
