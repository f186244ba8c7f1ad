"""Open RunspacePools kept per process and lent to one action at a time, keyed by connection identity.

Opening a pool costs an authentication handshake and a shell creation on the node, so a pool is kept after
an action and lent to the next action with the same settings and credentials (whatever the run). A pool is
closed when it has been idle for `idle_seconds` (a node may stop answering an idle pool after about two
minutes), when an action on it failed in a way that may have broken it (NodeSession discards it), and when
the owner whose credentials it uses releases them (`close_owner`, on a credential wipe).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict

from app.remote.runner import Connection, NodeSession


class SessionCache:
    """Idle NodeSessions of this process; `checkout` lends one (or a new one), `checkin` returns it."""

    def __init__(self, idle_seconds: float = 60.0) -> None:
        self.idle_seconds = idle_seconds
        self._idle: dict[tuple, list[NodeSession]] = defaultdict(list)
        self._owners: dict[int, set] = {}
        self._doomed: set[int] = set()
        self._lock = threading.Lock()
        self._sweeper: threading.Thread | None = None
        self._stop = threading.Event()

    def checkout(self, conn: Connection, owner: object = None) -> NodeSession:
        """An idle open session for these connection settings, or a new (not yet opened) one."""
        key = conn.identity
        with self._lock:
            idle = self._idle.get(key) or []
            session = idle.pop() if idle else NodeSession(conn)
            self._owners.setdefault(id(session), set()).add(owner)
        session.conn = conn  # same identity; fresh timeouts
        return session

    def checkin(self, session: NodeSession) -> None:
        """Return a session after an action; broken or released ones are closed instead."""
        with self._lock:
            keep = session.is_open and id(session) not in self._doomed
            if keep:
                session.last_used = time.monotonic()
                self._idle[session.conn.identity].append(session)
                self._start_sweeper()
            else:
                self._forget(session)
        if not keep:
            session.close()

    def close_owner(self, owner: object) -> None:
        """Close the idle sessions `owner` used; busy ones are closed when checked in."""
        with self._lock:
            doomed = [s for s in self._all_idle() if owner in self._owners.get(id(s), ())]
            self._remove(doomed)
            self._doomed.update(i for i, owners in self._owners.items() if owner in owners)
        for session in doomed:
            session.close()

    def expire(self) -> None:
        """Close sessions idle for longer than idle_seconds."""
        limit = time.monotonic() - self.idle_seconds
        with self._lock:
            doomed = [s for s in self._all_idle() if s.last_used < limit]
            self._remove(doomed)
        for session in doomed:
            session.close()

    def close_all(self) -> None:
        """Close every idle session (worker shutdown)."""
        with self._lock:
            doomed = list(self._all_idle())
            self._remove(doomed)
        for session in doomed:
            session.close()

    def idle_count(self) -> int:
        """How many open sessions wait for work."""
        with self._lock:
            return sum(len(v) for v in self._idle.values())

    def _all_idle(self):
        return [s for sessions in self._idle.values() for s in sessions]

    def _remove(self, sessions: list[NodeSession]) -> None:
        for session in sessions:
            self._idle[session.conn.identity].remove(session)
            self._forget(session)
        for key in [k for k, v in self._idle.items() if not v]:
            del self._idle[key]

    def _forget(self, session: NodeSession) -> None:
        self._owners.pop(id(session), None)
        self._doomed.discard(id(session))

    def _start_sweeper(self) -> None:
        if self._sweeper is None:
            self._sweeper = threading.Thread(target=self._sweep, name="amsw-sessions", daemon=True)
            self._sweeper.start()

    def _sweep(self) -> None:
        """Expire idle sessions in the background; stops when none are left."""
        while not self._stop.wait(max(self.idle_seconds / 4, 0.05)):
            self.expire()
            with self._lock:
                if not self._idle:
                    self._sweeper = None
                    return
