"""The pool pings only connections that sat idle long enough to go stale, and replaces dead ones;
on PostgreSQL its connections keep their prepared statements across a rollback.

Runs on the suite's database: SQLite by default, PostgreSQL in CI (there the dead connection is a
backend the server terminated)."""

import time

import pytest
from sqlalchemy import create_engine, text

from app.pool import KeepPreparedConnection, install_idle_ping, keep_prepared_statements

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


@pytest.fixture
def keeping(database_url):
    engine = create_engine(database_url, pool_size=1, max_overflow=0)
    keep_prepared_statements(engine)
    yield engine
    engine.dispose()


def _prepared(conn) -> int:
    return conn.execute(text("SELECT count(*) FROM pg_prepared_statements")).scalar()


@pytest.mark.postgres
def test_prepared_statements_outlive_a_rollback(keeping):
    query = text("SELECT count(*) FROM pg_class WHERE relname = :name")
    with keeping.connect() as conn:
        assert isinstance(conn.connection.dbapi_connection, KeepPreparedConnection)
        for _ in range(6):  # psycopg prepares a statement at its sixth run on a connection
            conn.execute(query, {"name": "x"})
        assert _prepared(conn) == 1
        conn.rollback()  # what ends every read-only request
        assert _prepared(conn) == 1  # plain psycopg would have sent DEALLOCATE ALL
        conn.execute(query, {"name": "x"})
        assert _prepared(conn) == 1  # run again from the server's copy, not prepared anew
        conn.exec_driver_sql("DEALLOCATE ALL")  # run by hand: psycopg forgets them too
        assert _prepared(conn) == 0
        for _ in range(6):  # so it prepares the statement again, rather than use a name now gone
            assert conn.execute(query, {"name": "x"}).scalar() == 0
        assert _prepared(conn) == 1


@pytest.mark.postgres
def test_a_kept_statement_follows_a_table_that_was_dropped_and_made_again(keeping, database_url):
    other = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with other.connect() as ddl:
        ddl.exec_driver_sql("DROP TABLE IF EXISTS pool_probe")
        ddl.exec_driver_sql("CREATE TABLE pool_probe (n integer)")
        ddl.exec_driver_sql("INSERT INTO pool_probe VALUES (1)")
    try:
        with keeping.connect() as conn:
            query = text("SELECT sum(n) FROM pool_probe")
            for _ in range(6):
                assert conn.execute(query).scalar() == 1
            conn.rollback()
            with other.connect() as ddl:  # as the test suite does between sessions
                ddl.exec_driver_sql("DROP TABLE pool_probe")
                ddl.exec_driver_sql("CREATE TABLE pool_probe (n integer)")
                ddl.exec_driver_sql("INSERT INTO pool_probe VALUES (2), (3)")
            # PostgreSQL planned the kept statement again, on the new table
            assert conn.execute(query).scalar() == 5
            assert _prepared(conn) == 1
    finally:
        with other.connect() as ddl:
            ddl.exec_driver_sql("DROP TABLE IF EXISTS pool_probe")
        other.dispose()


def test_only_postgresql_connections_keep_prepared_statements(keeping):
    with keeping.connect() as conn:
        kept = isinstance(conn.connection.dbapi_connection, KeepPreparedConnection)
    assert kept == (keeping.dialect.name == "postgresql")


def test_the_apps_connections_keep_prepared_statements(ctx):
    from app.extensions import db

    with db.engine.connect() as conn:
        kept = isinstance(conn.connection.dbapi_connection, KeepPreparedConnection)
    assert kept == (db.engine.dialect.name == "postgresql")
