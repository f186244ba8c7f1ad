"""Tests that cannot tell the embedded defaults from PostgreSQL and Redis, and the guard that
proves it each time they run.

A test is service-free when it asks for neither test database (`database_url`, the web tests',
nor `exec_db_url`, the worker's) and is not marked `services`. While one runs:

- checking a connection out of any SQLAlchemy pool fails it,
- connecting to any Redis server fails it,
- DATABASE_URL and REDIS_URL are not in the environment (what it starts sees neither),

from the test's own threads (threads that were running before it, such as a session's event hub,
are not its doing). Such a test therefore behaves the same in both of CI's suites: .ci/run's
services suite sets AMSW_SERVICE_FREE=skip and leaves them to the embedded suite, which runs
every test. Without that variable (`make test` anywhere) they run, guarded, as any other test.
"""

from __future__ import annotations

import os
import threading

import redis.connection
from sqlalchemy import event
from sqlalchemy.pool import Pool

SERVICE_FIXTURES = frozenset({"database_url", "exec_db_url"})
SKIP_VARIABLE = "AMSW_SERVICE_FREE"
SCRUBBED = ("DATABASE_URL", "REDIS_URL")


class ServiceUsed(AssertionError):
    """A service-free test reached a database or Redis."""


def is_service_free(fixturenames, marked_services: bool) -> bool:
    """Whether a test with these fixtures (its whole closure) and markers touches no service."""
    return not marked_services and not SERVICE_FIXTURES & set(fixturenames)


def skipped_here(environ=os.environ) -> bool:
    """Whether this suite leaves service-free tests to the other one (.ci/run's services suite)."""
    return environ.get(SKIP_VARIABLE) == "skip"


class Guard:
    """While active, a database checkout or a Redis connection from a thread started since
    `start()` (or the thread that called it) raises ServiceUsed; every attempt is kept in
    `used` as well, so a thread that swallows the error still fails the test."""

    def __init__(self) -> None:
        self.active = False
        self.used: list[str] = []
        self._before: set[int] = set()
        self._redis_connect = redis.connection.AbstractConnection.connect_check_health
        event.listen(Pool, "checkout", self._checkout)
        guard = self

        def connect(connection, *args, **kwargs):  # every way redis-py opens a socket
            where = f"{getattr(connection, 'host', '')}:{getattr(connection, 'port', '')}"
            guard._check(f"Redis at {where}")
            return guard._redis_connect(connection, *args, **kwargs)

        self._connect = connect

    def start(self) -> None:
        self.used = []
        owner = threading.get_ident()
        self._before = {t.ident for t in threading.enumerate() if t.ident != owner}
        redis.connection.AbstractConnection.connect_check_health = self._connect
        self.active = True

    def stop(self) -> list[str]:
        """End the guard; returns what was reached meanwhile."""
        self.active = False
        redis.connection.AbstractConnection.connect_check_health = self._redis_connect
        return self.used

    def _checkout(self, dbapi_connection, record, proxy) -> None:
        self._check("a database (SQLAlchemy pool checkout)")

    def _check(self, what: str) -> None:
        if not self.active or threading.get_ident() in self._before:
            return
        self.used.append(what)
        raise ServiceUsed(
            f"this test reached {what} but asks for neither database_url nor exec_db_url: "
            "request the fixture it uses, or mark it `services` (tests/service_free.py)"
        )
