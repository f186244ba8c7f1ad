"""Database pool tuning: stale-connection checks only where needed.

SQLAlchemy's `pool_pre_ping` pings on every checkout: one extra round trip for every transaction,
and a run's hot path has three (the run request, the action's claim, the action's end). A connection
checked in moments ago is as good as one that was just used, so this pings only connections that sat
in the pool for `idle_seconds` or more: those are the ones a database restart, an idle timeout or a
firewall may have dropped. A dead one is replaced before the caller sees it. If the database
restarts within that window, the next statement on an older connection fails once; SQLAlchemy then
invalidates the whole pool, so the retry gets a new connection.
"""

from __future__ import annotations

import time

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
