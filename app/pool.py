"""Database pool tuning: stale-connection checks only where needed, prepared statements that last.

Stale connections.

SQLAlchemy's `pool_pre_ping` pings on every checkout: one extra round trip for every transaction,
and a run's hot path has three (the run request, the action's claim, the action's end). A connection
checked in moments ago is as good as one that was just used, so this pings only connections that sat
in the pool for `idle_seconds` or more: those are the ones a database restart, an idle timeout or a
firewall may have dropped. A dead one is replaced before the caller sees it. If the database
restarts within that window, the next statement on an older connection fails once; SQLAlchemy then
invalidates the whole pool, so the retry gets a new connection.

Prepared statements (PostgreSQL). psycopg prepares a statement on the server after a connection has
run it five times, which spares PostgreSQL parsing and planning it again (the run lock's seven-table
join takes about 0.9 ms to plan). But psycopg forgets them all at every ROLLBACK and sends
`DEALLOCATE ALL`, and every read-only request ends with one, when the session closes. The web
process therefore never kept a prepared statement. Our connections keep them across a rollback: a
statement prepared in a transaction is not part of it, and PostgreSQL plans a statement again
whenever a table it uses changes. psycopg still forgets them after DDL it runs itself (`DROP`,
`ALTER`, `DISCARD ALL`), as before.
"""

from __future__ import annotations

import time

import psycopg
from psycopg import pq
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError

IDLE_SINCE = "amsw_idle_since"  # key in each pooled connection's record.info


def install_idle_ping(engine: Engine, idle_seconds: float) -> None:
    """Ping a connection on checkout if it has been idle `idle_seconds` or more (0: every time)."""

    @event.listens_for(engine, "checkin")
    def _checked_in(dbapi_connection, record) -> None:
        record.info[IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection, record, proxy) -> None:
        since = record.info.pop(IDLE_SINCE, None)
        if since is None or time.monotonic() - since < idle_seconds:
            return  # a new connection, or one in use moments ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # any failure: do not hand this connection out
            raise DisconnectionError(f"Pooled connection failed its ping: {exc}") from exc


class KeepPreparedConnection(psycopg.Connection):
    """A psycopg connection whose rollback keeps the prepared statements (see the module docstring).

    psycopg 3.3's own `_rollback_gen`, less its last two lines (forget, then DEALLOCATE ALL). It is
    a private method of the pinned release: tests/test_pool.py fails if a new release changes it."""

    def _rollback_gen(self):
        if self._num_transactions or self._tpc or self._pipeline:
            return (yield from super()._rollback_gen())  # psycopg's own checks and errors
        if self.pgconn.transaction_status == pq.TransactionStatus.IDLE:
            return None
        yield from self._exec_command(b"ROLLBACK")
        return None


def keep_prepared_statements(engine: Engine) -> None:
    """Open the engine's psycopg connections as KeepPreparedConnection (other drivers: unchanged)."""
    if engine.dialect.driver != "psycopg":
        return

    @event.listens_for(engine, "do_connect")
    def _connect(dialect, record, cargs, cparams):
        return KeepPreparedConnection.connect(*cargs, **cparams)
