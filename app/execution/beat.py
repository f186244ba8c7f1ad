"""The beat service: one per installation, in a process of its own (not `-B` inside a worker).

`celery -A app.execution.worker.main beat` sends the reaper's sweep every REAPER_INTERVAL_SECONDS. Its
scheduler first takes the installation's beat lock and exits at once when another beat holds it,
so two beats never run against one schedule:
- on PostgreSQL, a session advisory lock on a connection held for the beat's life (released by
  the server when the process dies, however it dies);
- on SQLite (one machine, `make run`), an exclusive flock on instance/beat.lock (released by the
  kernel when the process dies).
"""

from __future__ import annotations

import fcntl
import logging
from pathlib import Path

from celery.beat import PersistentScheduler
from sqlalchemy import text

from app.extensions import db

log = logging.getLogger(__name__)
ADVISORY_KEY = 0x414D5357_42454154 & 0x7FFFFFFFFFFFFFFF  # "AMSWBEAT", a bigint key


class BeatLocked(SystemExit):
    """Another beat holds the lock: this one exits (status 1) without sending anything."""


class BeatLock:
    """The installation-wide lock; `acquire` is False when another process holds it."""

    def __init__(self, flask_app) -> None:
        self.app = flask_app
        self._conn = None
        self._file = None

    def acquire(self) -> bool:
        with self.app.app_context():
            if db.engine.dialect.name == "postgresql":
                return self._advisory()
            return self._flock(Path(self.app.config["INSTANCE_DIR"]) / "beat.lock")

    def _advisory(self) -> bool:
        self._conn = db.engine.connect()
        held = self._conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_KEY})
        self._conn.commit()  # the lock is the session's, not the transaction's
        return bool(held)

    def _flock(self, path: Path) -> bool:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "a+")  # noqa: SIM115 - held open for the beat's life
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def release(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._file is not None:
            self._file.close()


class SingleBeatScheduler(PersistentScheduler):
    """Celery's file-backed scheduler, run only by the holder of the beat lock."""

    def setup_schedule(self) -> None:
        self.beat_lock = BeatLock(self.app.flask_app)
        if not self.beat_lock.acquire():
            self.beat_lock.release()
            log.error("Another beat is already running for this installation; this one exits.")
            raise BeatLocked("beat: another beat holds the lock (one beat per installation)")
        super().setup_schedule()

    def close(self) -> None:
        super().close()
        self.beat_lock.release()
