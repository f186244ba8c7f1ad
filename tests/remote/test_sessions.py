"""Pooled sessions: reused by connection identity, never across credentials, closed idle or released."""

import time

from app.remote.runner import Connection
from app.remote.sessions import SessionCache


class FakePool:
    """Stands in for an open RunspacePool."""

    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


def conn(password: str = "pw", host: str = "node1") -> Connection:  # noqa: S107 - a test value
    return Connection(host, 5985, auth="ntlm", username="admin", password=password)


def used(cache: SessionCache, connection: Connection, owner: int = 1):
    """Check a session out, 'open' it as an action would, and check it back in."""
    session = cache.checkout(connection, owner)
    session._pool = session._pool or FakePool()
    cache.checkin(session)
    return session


def test_same_connection_reuses_the_open_session():
    cache = SessionCache()
    assert used(cache, conn()) is used(cache, conn(), owner=2)


def test_other_credentials_or_node_get_their_own_session():
    cache = SessionCache()
    first = used(cache, conn())
    assert used(cache, conn(password="other")) is not first
    assert used(cache, conn(host="node2")) is not first
    assert cache.idle_count() == 3


def test_a_busy_session_is_not_lent_twice():
    cache = SessionCache()
    busy = cache.checkout(conn())
    assert cache.checkout(conn()) is not busy


def test_identity_does_not_show_the_password():
    assert "pw" not in repr(conn().identity)


def test_broken_session_is_dropped_on_checkin():
    cache = SessionCache()
    session = cache.checkout(conn())  # never opened, or discarded after an error
    cache.checkin(session)
    assert cache.idle_count() == 0


def test_idle_sessions_expire():
    cache = SessionCache(idle_seconds=0.05)
    pool = used(cache, conn())._pool
    time.sleep(0.1)  # the point: idle for longer than idle_seconds
    cache.expire()
    assert pool.closed and cache.idle_count() == 0


def test_releasing_an_owner_closes_its_idle_and_busy_sessions():
    cache = SessionCache()
    idle_pool = used(cache, conn(), owner=7)._pool
    other_pool = used(cache, conn(host="node2"), owner=8)._pool
    busy = cache.checkout(conn(host="node3"), owner=7)
    busy._pool = FakePool()
    cache.close_owner(7)
    assert idle_pool.closed and not other_pool.closed
    cache.checkin(busy)
    assert busy._pool is None and cache.idle_count() == 1
