"""Processes that serve (gunicorn's workers, the Celery worker) put their start-up objects out of the
cycle collector's reach; the test suite's apps do not."""

import gc

from app import create_app, setup
from config import Config, TestConfig


def test_serving_apps_freeze_what_start_up_built(monkeypatch, tmp_path):
    frozen = []
    monkeypatch.setattr(setup, "freeze_startup_objects", lambda: frozen.append(True))
    database = {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.sqlite3'}"}
    create_app(Config, database)
    assert frozen == [True]
    create_app(Config, {**database, "GC_FREEZE_AT_START": False})
    create_app(TestConfig, database)
    assert frozen == [True]


def test_freezing_leaves_startup_objects_to_the_permanent_generation():
    before = gc.get_freeze_count()
    try:
        setup.freeze_startup_objects()
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()
