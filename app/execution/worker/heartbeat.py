"""The heartbeat of a running action, which also notices that its run was cancelled."""

from __future__ import annotations

import logging
import threading
import time

from flask import Flask
from sqlalchemy import select

from app.execution.machine.transitions import ACTION
from app.extensions import db
from app.models import NodeAction, StepRun, utcnow

log = logging.getLogger(__name__)


class Heartbeat:
    """Touches heartbeat_at every `interval` s and sets `cancel_event` when the run is cancelled."""

    def __init__(
        self, app: Flask, action_id: int, run_id: int, interval: float, check: float = 0.5
    ) -> None:
        self.app, self.action_id, self.run_id = app, action_id, run_id
        self.interval, self.check = interval, check
        self.cancel_event = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name=f"heartbeat-{action_id}", daemon=True
        )

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        # Not joined: the thread sees the flag and ends on its own. A beat it still writes matches
        # only a running action, so it cannot touch the action's end, which need not wait for it.
        self._done.set()

    def _loop(self) -> None:
        last_beat = time.monotonic()
        with self.app.app_context():
            while not self._done.wait(self.check):
                try:
                    if time.monotonic() - last_beat >= self.interval:
                        self._beat()
                        last_beat = time.monotonic()
                    if self._cancel_requested():
                        self.cancel_event.set()
                except Exception:
                    log.warning("Heartbeat for action %s failed", self.action_id, exc_info=True)
                    db.session.rollback()
                finally:
                    db.session.close()

    def _beat(self) -> None:
        db.session.execute(
            ACTION.update("beat", NodeAction.id == self.action_id, heartbeat_at=utcnow())
        )
        db.session.commit()

    def _cancel_requested(self) -> bool:
        return bool(
            db.session.scalar(select(StepRun.cancel_requested).where(StepRun.id == self.run_id))
        )
