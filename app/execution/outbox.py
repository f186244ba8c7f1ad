"""Tasks the broker refused: kept in the database and sent again as soon as it answers.

Every send (CeleryEnqueue) goes through `send`. When Redis is down the send fails after Celery's own
short retry; the task is then written to `task_outbox` (its ids only, never a secret) in a
transaction of its own, and each worker's `Flusher` thread sends what waits, oldest first, every
OUTBOX_FLUSH_SECONDS. A task sent twice (the process died between the send and the delete) is
harmless: an action's claim and a run's advance are compare-and-set.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

import kombu.exceptions
import redis.exceptions
from flask import Flask, current_app
from sqlalchemy import func, insert, select

from app.extensions import db
from app.models import TaskOutbox, utcnow

log = logging.getLogger(__name__)
BROKER_ERRORS = (kombu.exceptions.OperationalError, redis.exceptions.ConnectionError, OSError)


def send(name: str, args: tuple, countdown: float = 0) -> bool:
    """Send a task; keep it for later when the broker refuses it. True when it went now."""
    try:
        _send_now(name, args, countdown)
        return True
    except BROKER_ERRORS as exc:
        log.warning("Broker unavailable; %s%s waits in the outbox: %s", name, args, exc)
        with db.engine.begin() as conn:  # not the caller's session: its transaction is its own
            conn.execute(
                insert(TaskOutbox).values(
                    task=name,
                    args=list(args),
                    countdown=countdown,
                    created_at=utcnow(),
                    attempts=1,
                    last_error=str(exc)[:500],
                )
            )
        return False


def _send_now(name: str, args: tuple, countdown: float) -> None:
    current_app.extensions["celery"].send_task(name, tuple(args), countdown=countdown or None)


def flush(limit: int = 200) -> int:
    """Send what waits, oldest first; stop at the first refusal. Returns how many were sent."""
    rows = db.session.scalars(select(TaskOutbox).order_by(TaskOutbox.id).limit(limit)).all()
    sent = 0
    for row in rows:
        left = row.countdown - (utcnow() - row.created_at).total_seconds()
        try:
            _send_now(row.task, tuple(row.args), max(left, 0))
        except BROKER_ERRORS as exc:
            row.attempts += 1
            row.last_error = str(exc)[:500]
            db.session.commit()
            break
        db.session.delete(row)
        db.session.commit()
        sent += 1
    db.session.close()
    return sent


def waiting() -> tuple[int, datetime | None]:
    """(tasks waiting for the broker, since when)."""
    count, oldest = db.session.execute(
        select(func.count(TaskOutbox.id), func.min(TaskOutbox.created_at))
    ).one()
    return count, oldest


class Flusher:
    """A worker's thread that sends the outbox's tasks once the broker is back."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.interval = float(app.config.get("OUTBOX_FLUSH_SECONDS", 1.0))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="outbox-flusher", daemon=True)

    def start(self) -> Flusher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        failing = False
        while not self._stop.wait(self.interval):
            with self.app.app_context():
                try:
                    if sent := flush():
                        log.info("Sent %d task(s) that waited for the broker", sent)
                    failing = False
                except Exception:  # the database may be down too: say so once, keep trying
                    if not failing:
                        log.warning("Could not read the task outbox", exc_info=True)
                    failing = True
                    db.session.rollback()
                finally:
                    db.session.remove()
