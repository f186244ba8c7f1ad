"""The service-free rule and its guard (tests/service_free.py)."""

import threading

import pytest
import redis
from sqlalchemy import create_engine, text

from tests import service_free
from tests.services import free_port


def test_a_test_asking_for_either_database_is_not_service_free():
    assert service_free.is_service_free(["tmp_path", "browser"], marked_services=False)
    assert not service_free.is_service_free(["app", "database_url"], marked_services=False)
    assert not service_free.is_service_free(["worker", "exec_db_url"], marked_services=False)
    assert not service_free.is_service_free(["tmp_path"], marked_services=True)


def test_only_the_services_suite_of_ci_leaves_them_out():
    assert service_free.skipped_here({"AMSW_SERVICE_FREE": "skip"})
    assert not service_free.skipped_here({})


def test_this_test_sees_neither_service_url():
    import os

    assert not {"DATABASE_URL", "REDIS_URL"} & os.environ.keys()


@pytest.mark.services  # it reaches a database on purpose: the session's own guard stays off
def test_the_guard_refuses_a_database_and_redis_from_the_test_and_its_threads(tmp_path):
    guard = service_free.Guard()
    engine = create_engine(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    guard.start()
    try:
        with pytest.raises(service_free.ServiceUsed, match="database"):
            engine.connect()
        with pytest.raises(service_free.ServiceUsed, match="Redis"):
            redis.Redis(port=free_port(), socket_connect_timeout=0.2).ping()
        caught = []

        def reach():
            try:
                engine.connect()
            except service_free.ServiceUsed as exc:
                caught.append(exc)

        thread = threading.Thread(target=reach)
        thread.start()
        thread.join()
        assert caught  # a thread the test started is the test's doing
    finally:
        used = guard.stop()
    assert len(used) == 3
    with engine.connect() as conn:  # stopped: nothing refused
        assert conn.execute(text("select 1")).scalar() == 1
    engine.dispose()
