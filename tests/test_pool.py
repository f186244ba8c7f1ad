"""The pool pings only connections that sat idle long enough to go stale, and replaces dead ones.

Runs on the suite's database: SQLite by default, PostgreSQL in CI (there the dead connection is a
backend the server terminated)."""

import time

import pytest
from sqlalchemy import create_engine, text

from app.pool import install_idle_ping

IDLE = 0.3


@pytest.fixture
def engine(database_url):
    engine = create_engine(database_url, pool_size=1, max_overflow=0)
    install_idle_ping(engine, IDLE)
    pings = []
    ping = engine.dialect.do_ping
    engine.dialect.do_ping = lambda dbapi_connection: pings.append(1) or ping(dbapi_connection)
    engine.pings = pings
    yield engine
    engine.dispose()


def _use(engine) -> None:
    with engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1


def test_a_connection_used_moments_ago_is_not_pinged(engine):
    _use(engine)  # a new connection: never pinged
    _use(engine)  # checked in moments ago
    assert engine.pings == []
    time.sleep(IDLE + 0.1)  # the point: idle for longer than the ping threshold
    _use(engine)
    assert len(engine.pings) == 1


def test_a_dead_idle_connection_is_replaced_before_anyone_uses_it(engine):
    postgres = engine.dialect.name == "postgresql"
    with engine.connect() as conn:
        before = conn.execute(text("SELECT pg_backend_pid()")).scalar() if postgres else None
        raw = conn.connection.dbapi_connection
    if postgres:  # the server drops it, as on a restart or an idle timeout
        killer = create_engine(engine.url, isolation_level="AUTOCOMMIT")
        with killer.connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": before})
        killer.dispose()
    else:
        raw.close()
    time.sleep(IDLE + 0.1)  # the point: idle for longer than the ping threshold
    with engine.connect() as conn:  # would fail here with a dead connection, without the ping
        assert conn.execute(text("SELECT 1")).scalar() == 1
        if postgres:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar() != before
    assert len(engine.pings) == 1
