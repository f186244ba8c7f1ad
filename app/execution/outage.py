"""Riding out a short database outage (a PostgreSQL restart) on a worker.

Only errors that say the database could not be reached, or dropped the connection, are worth
another try: the transaction was rolled back by the server or never began. Anything else (a
constraint, a deadlock, a bug) is raised at once, as before.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError

from app.extensions import db

log = logging.getLogger(__name__)

T = TypeVar("T")
# SQLSTATEs of a lost or refused connection: class 08, admin/crash shutdown, cannot connect now.
CONNECTION_STATES = ("08", "57P01", "57P02", "57P03")
FIRST_DELAY, MAX_DELAY = 0.1, 2.0  # seconds between tries: doubling from the first to the cap


def connection_lost(exc: BaseException) -> bool:
    """Whether `exc` says the database was unreachable or dropped the connection."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    if not isinstance(exc, OperationalError):
        return False
    state = getattr(exc.orig, "sqlstate", None)  # None: no server answered (refused, closed)
    return state is None or state.startswith(CONNECTION_STATES)


def next_delay(delay: float) -> float:
    """The back-off after another failed try."""
    return min(max(delay * 2, FIRST_DELAY), MAX_DELAY)


def retry_while_unreachable(work: Callable[[], T], seconds: float, what: str) -> T:
    """Run `work` (one transaction); while the database is unreachable, roll back and run it
    again with a back-off, for up to `seconds`. Other errors, and the last one, are raised."""
    deadline, delay = time.monotonic() + seconds, FIRST_DELAY
    while True:
        try:
            return work()
        except DBAPIError as exc:
            _rollback()
            if not connection_lost(exc) or time.monotonic() + delay > deadline:
                raise
            log.warning("Database unreachable while recording %s; trying again: %s", what, exc.orig)
        time.sleep(delay)
        delay = next_delay(delay)


def _rollback() -> None:
    """Forget the failed transaction; on a dead connection the rollback itself may fail too."""
    with contextlib.suppress(Exception):
        db.session.rollback()
    db.session.close()
