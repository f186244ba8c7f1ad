"""The live event pump of a running action: its stream records reach the event log in batches.

Its thread opens its own app context (its own database session) and stops when the action ends.
Stream records reach the event log through a queue drained by the pump, which writes whatever has
accumulated in one transaction (one sequence allocation, one commit, one Redis notify), so a chatty
script costs a few commits per second rather than one per line, while a quiet one is published at once.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable

from flask import Flask
from sqlalchemy import update

from app.events.publish import publish_many
from app.execution import outage
from app.execution.worker.redaction import redact
from app.extensions import db
from app.models import NodeAction

log = logging.getLogger(__name__)

STREAM_KINDS = {
    "output": "node.output",
    "progress": "node.progress",
    "information": "node.information",
    "warning": "node.warning",
    "error": "node.error",
    "verbose": "node.verbose",
    "debug": "node.debug",
}
BATCH_MAX = 200


class EventPump:
    """Publishes stream records from a queue in batches; `put` is the runner's on_record callback.

    Its thread starts with the first record, so a script that streams nothing costs no thread.
    While the database is unreachable, the records it could not write wait in order (at most
    `EVENT_BUFFER_RECORDS`; beyond that they are counted) and are written, ahead of newer ones,
    once it returns. After the action ends it tries for `DB_OUTAGE_SECONDS` more; `lost` is the
    number of records that never reached the log."""

    def __init__(
        self,
        app: Flask,
        action_id: int,
        deployment_id: int,
        base: dict,
        secrets: list[str],
        write: Callable[[list[dict]], None] | None = None,
    ) -> None:
        self.app = app
        self.deployment_id = deployment_id
        self.secrets = [s for s in secrets if s]
        self.base = base
        self.action_id = action_id
        self.flush_seconds = float(app.config.get("DB_OUTAGE_SECONDS", 30))
        self.buffer_max = int(app.config.get("EVENT_BUFFER_RECORDS", 5000))
        self.lost = 0
        self._write = write or self._write_records
        self._pending: list[dict] = []  # taken from the queue, not written yet, oldest first
        self._failing = False
        self._abandoned = False
        self._queue: queue.Queue = queue.Queue()
        self._last_progress: tuple | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> EventPump:
        return self

    def __exit__(self, *exc) -> None:
        if self._thread is not None:  # drain what was queued before node.finished is written
            self._queue.put(None)
            self._thread.join(timeout=self.flush_seconds + 5)
            if self._thread.is_alive():
                self._abandon()

    def put(self, record: dict) -> None:
        """Runner callback: queue one record (skips repeated identical progress)."""
        if record["stream"] == "output" and record["text"].lstrip()[:1] in ("{", "["):
            return  # the JSON result is reported by node.finished
        if record["stream"] == "progress":
            key = (record["activity"], record["status"], record["percent"])
            if key == self._last_progress:
                return
            self._last_progress = key
        self._queue.put(redact(record, self.secrets))
        if self._thread is None:  # put is only called from the thread running the script
            self._thread = threading.Thread(
                target=self._loop, name=f"events-{self.action_id}", daemon=True
            )
            self._thread.start()

    def _loop(self) -> None:
        with self.app.app_context():
            ending = None  # the flush deadline, once the action has ended
            retry_at, delay = 0.0, 0.0  # when to write the pending records again; the back-off
            while not self._abandoned:
                wait = max(0.0, retry_at - time.monotonic()) if self._pending else None
                if ending is None:
                    ending = self._collect(wait)
                elif wait:
                    time.sleep(min(wait, max(0.0, ending - time.monotonic())))
                if time.monotonic() >= retry_at:
                    delay = 0.0 if self._flush() else outage.next_delay(delay)
                    retry_at = time.monotonic() + delay
                if ending is not None and (not self._pending or time.monotonic() >= ending):
                    break
            self._give_up()

    def _collect(self, timeout: float) -> float | None:
        """Move queued records to the pending list, waiting up to `timeout` s (None: for the
        first record); the flush deadline once the action's end was queued."""
        try:
            first = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        batch = [first]
        with contextlib.suppress(queue.Empty):
            while True:
                batch.append(self._queue.get_nowait())
        records = [r for r in batch if r is not None]
        room = max(0, self.buffer_max - len(self._pending))
        self._pending.extend(records[:room])
        self.lost += len(records) - min(room, len(records))
        return time.monotonic() + self.flush_seconds if None in batch else None

    def _flush(self) -> bool:
        """Write the pending records, oldest first; False when the database is unreachable."""
        while self._pending:
            records = self._pending[:BATCH_MAX]
            try:
                self._write(records)
            except Exception as exc:
                if outage.connection_lost(exc):
                    self._note_failing(exc)
                    return False
                self.lost += len(records)
                log.warning(
                    "Could not publish %d records of action %s",
                    len(records),
                    self.action_id,
                    exc_info=True,
                )
            del self._pending[: len(records)]
        if self._failing:
            self._failing = False
            log.info("Action %s: its output is written again", self.action_id)
        return True

    def _note_failing(self, exc: Exception) -> None:
        if not self._failing:
            log.warning(
                "Action %s: the database is unreachable; its output waits (%s)", self.action_id, exc
            )
        self._failing = True

    def _give_up(self) -> None:
        """Count what is left after the flush deadline as lost."""
        if self._abandoned:
            return
        self.lost += len(self._pending)
        self._pending.clear()

    def _abandon(self) -> None:
        """The thread is stuck in a write past its deadline: count what it holds as lost."""
        self._abandoned = True
        with self._queue.mutex:  # the records still queued, not the end-of-action marker
            queued = sum(r is not None for r in self._queue.queue)
        self.lost += len(self._pending) + queued
        log.warning("Action %s: its event pump did not finish writing", self.action_id)

    def _write_records(self, records: list[dict]) -> None:
        """One transaction: the records as events, and the action's latest progress."""
        items = []
        progress = None
        for record in records:
            payload = {k: v for k, v in record.items() if k != "stream"}
            items.append(
                {
                    **self.base,
                    "kind": STREAM_KINDS.get(record["stream"], "node.output"),
                    "payload": payload,
                }
            )
            if record["stream"] == "progress" and record.get("percent", -1) >= 0:
                progress = record["percent"]
        try:
            if progress is not None:
                db.session.execute(
                    update(NodeAction)
                    .where(NodeAction.id == self.action_id)
                    .values(progress=progress)
                )
            publish_many(self.deployment_id, items)
        except Exception:
            with contextlib.suppress(Exception):  # on a dead connection the rollback fails too
                db.session.rollback()
            raise
        finally:
            db.session.close()
