"""The moving parts of one node action on a worker: claim, heartbeat/cancel watch, live event pump, sessions.

Both background threads open their own app context (their own database session) and stop when the action
ends. Stream records reach the event log through a queue drained by the pump, which writes whatever has
accumulated in one transaction (one sequence allocation, one commit, one Redis notify), so a chatty script
costs a few commits per second rather than one per line, while a quiet one is published at once.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, has_app_context
from sqlalchemy import bindparam, select, update

from app.events.publish import publish_many
from app.execution import outage
from app.extensions import db
from app.models import Node, NodeAction, StepRun, utcnow
from app.remote import kerberos
from app.remote.runner import Connection
from app.remote.sessions import SessionCache

log = logging.getLogger(__name__)

SESSIONS = SessionCache(idle_seconds=60.0)  # open pools of this worker process, by connection
STOPPING = threading.Event()  # set when the worker begins to shut down (celery_app.py)
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
MASK = "********"


def worker_name() -> str:
    """host:pid:thread, recorded on the action for operators and the reaper."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"[:255]


@functools.cache
def _claim_statement():
    """queued -> running, built once; the SET columns of _claimed() come with each call's values."""
    table = NodeAction.__table__
    return (
        update(table)
        .where(table.c.id == bindparam("action_id"), table.c.status == "queued")
        .values(try_count=table.c.try_count + 1)
    )


def claim(action_id: int, *, commit: bool = True) -> bool:
    """queued -> running for this caller only; a redelivered task finds nothing to claim.

    With commit=False the caller commits (with its node.started event) and holds the row until then."""
    # A Core UPDATE (no ORM bookkeeping); the caller loads the row afresh.
    result = db.session.execute(_claim_statement(), {"action_id": action_id, **_claimed()})
    if commit:
        db.session.commit()
    return result.rowcount == 1


def claim_new(action: NodeAction) -> None:
    """Create `action` already claimed by this worker (see KeepFirst in execute.py): it is inserted
    as running, in the transaction that starts its phase, so it has no queued state to claim."""
    for key, value in _claimed().items():
        setattr(action, key, value)
    action.try_count = 1


def _claimed() -> dict:
    """The columns of an action this worker claims now (with its try count, set by the caller)."""
    now = utcnow()
    return {"status": "running", "started_at": now, "heartbeat_at": now, "worker": worker_name()}


def connection_for(node: Node, username: str, password: str | None, timeout: float) -> Connection:
    """A runner Connection from a Node row and the vault's credentials."""
    deployment = node.deployment
    return Connection(
        host=node.host,
        port=node.port,
        transport=node.transport,
        auth=node.auth,
        cert_validation=node.cert_validation,
        ca_bundle=deployment.ca_bundle,
        username=username,
        password=password,
        read_timeout=max(30, int(min(timeout, 120))),
        realm=kerberos.realm_of(deployment.domain_fqdn),
        kdcs=kerberos.parse_kdcs(deployment.kerberos_kdcs),
        spn_host=kerberos.service_host(node.host, node.name, deployment.domain_fqdn),
        kdc_dns=current_app.config["KERBEROS_DNS"] if has_app_context() else True,
    )


def redact(value: Any, secrets: list[str]) -> Any:
    """Replace any secret value that a script echoed back."""
    if not secrets:
        return value
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, MASK)
        return value
    if isinstance(value, dict):
        return {k: redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, secrets) for v in value]
    return value


class SecretRedactor(logging.Filter):
    """A log filter that masks the secrets of the actions running in this process (defence in depth)."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._secrets: dict[str, int] = {}

    def hold(self, secrets: list[str]) -> None:
        with self._lock:
            for secret in filter(None, secrets):
                self._secrets[secret] = self._secrets.get(secret, 0) + 1

    def release(self, secrets: list[str]) -> None:
        with self._lock:
            for secret in filter(None, secrets):
                if self._secrets.get(secret, 0) <= 1:
                    self._secrets.pop(secret, None)
                else:
                    self._secrets[secret] -= 1

    def filter(self, record: logging.LogRecord) -> bool:
        with self._lock:
            secrets = list(self._secrets)
        if secrets:
            message = record.getMessage()
            if any(s in message for s in secrets):
                record.msg, record.args = redact(message, secrets), None
            _redact_traceback(record, secrets)
        return True


def _redact_traceback(record: logging.LogRecord, secrets: list[str]) -> None:
    """An exception's text (log.exception) and a stack dump may quote a secret too: format them
    here, masked, so the handler's formatter prints the masked copy."""
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact(record.exc_text, secrets)
    if record.stack_info:
        record.stack_info = redact(record.stack_info, secrets)


REDACTOR = SecretRedactor()
NOISY_LOGGERS = ("pypsrp", "psrpcore", "spnego", "requests_credssp", "urllib3")


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Attach the redactor to every handler of `logger` (root by default); protocol dumps stay at INFO."""
    logger = logger or logging.getLogger()
    for handler in logger.handlers:
        if REDACTOR not in handler.filters:
            handler.addFilter(REDACTOR)
    for name in NOISY_LOGGERS:
        noisy = logging.getLogger(name)
        if noisy.getEffectiveLevel() < logging.INFO:
            noisy.setLevel(logging.INFO)


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
            update(NodeAction)
            .where(NodeAction.id == self.action_id, NodeAction.status == "running")
            .values(heartbeat_at=utcnow())
        )
        db.session.commit()

    def _cancel_requested(self) -> bool:
        return bool(
            db.session.scalar(select(StepRun.cancel_requested).where(StepRun.id == self.run_id))
        )


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
