"""Running one node action on a worker: claim it, run its vetted script, record how it ended.

An action runs only after `queued -> running` succeeded for this caller (actions.claim); it ends only from
`running` (so the reaper or a cancel that got there first wins). Secrets never enter task arguments,
NodeAction rows or events: actions record secret *names* and the worker reads the values from the vault
when it runs the script, masking them in everything the script sends back.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from flask import Flask, current_app
from sqlalchemy import Select, bindparam, select, update

from app.events.publish import held_events, publish_many
from app.execution import outage, vault
from app.execution.dispatch import Enqueue, default_enqueue
from app.execution.machine.phases import advance, after_action, close_phase, lock_run
from app.execution.machine.state import ACTIVE_RUN
from app.execution.machine.transitions import ACTION, ACTION_END
from app.execution.worker.claim import claim
from app.execution.worker.heartbeat import Heartbeat
from app.execution.worker.pump import EventPump
from app.execution.worker.redaction import REDACTOR, redact
from app.execution.worker.sessions import SESSIONS, STOPPING, connection_for
from app.extensions import db
from app.models import Credential, Node, NodeAction, StepRun, output_lost_notice, utcnow
from app.remote import errors
from app.remote.runner import Connection, NodeSession, RunResult
from app.remote.sessions import SessionCache

log = logging.getLogger(__name__)

RESULT_EVENT_LIMIT = 4000
T = TypeVar("T")


@dataclass(frozen=True)
class Job:
    """A claimed action as plain values, so nothing holds a database transaction while it runs."""

    action_id: int
    run_id: int
    deployment_id: int
    step_key: str
    node: str
    phase: str
    script: str
    label: str | None
    parameters: dict
    upload: dict | None
    timeout: float
    try_count: int

    @classmethod
    def of(cls, action: NodeAction, run: StepRun) -> Job:
        default = current_app.config.get("ACTION_TIMEOUT_SECONDS", 1800)
        return cls(
            action.id,
            run.id,
            run.deployment_id,
            run.step_key,
            action.node_name,
            action.phase,
            action.script,
            action.label,
            dict(action.parameters or {}),
            action.upload,
            action.timeout_seconds or default,
            action.try_count,
        )

    @property
    def base(self) -> dict[str, Any]:
        """The fields every event of this action carries."""
        return {
            "step_key": self.step_key,
            "node": self.node,
            "step_run_id": self.run_id,
            "node_action_id": self.action_id,
        }

    @property
    def started(self) -> dict[str, Any]:
        """The node.started payload."""
        return {
            "script": self.script,
            "label": self.label,
            "phase": self.phase,
            "try": self.try_count,
        }

    def event(self, kind: str, payload: dict) -> dict[str, Any]:
        """An event item for publish_many."""
        return {**self.base, "kind": kind, "payload": payload}


class KeepFirst:
    """The worker's Enqueue: of each phase this worker starts (the next phase, after an action it
    ran closed one; or a run's phase from an advance task), it keeps the first action and runs it
    itself once the phase's transaction has committed. That action is inserted already claimed
    (`claim_new`, its node.started in the same commit), so it skips a broker hop and a claim
    transaction; the phase's other actions go to Celery as before. A request that starts a run
    keeps nothing: its first phase's actions are queued for the workers.

    A kept action that its worker never runs (kill -9 between the commit and the script) is running
    with a stale heartbeat: the reaper marks it interrupted, as it does any claimed action, and a
    redelivered task finds nothing queued to claim or a phase already started."""

    def __init__(self, inner: Enqueue) -> None:
        self.inner = inner
        self._pending: _Kept | None = None
        self._ready: _Kept | None = None

    @property
    def accepting(self) -> bool:
        """False once the worker is stopping: its next phases go to the queue for other workers."""
        return not STOPPING.is_set()

    def advance(self, run_id: int, countdown: float = 0) -> None:
        self.inner.advance(run_id, countdown)

    def action(self, action_id: int, countdown: float = 0) -> None:
        self.inner.action(action_id, countdown)

    def keep(self, action: NodeAction, run: StepRun, node: Node) -> dict:
        """Snapshot what running `action` needs while this transaction has the rows loaded."""
        job = Job.of(action, run)
        try:
            held = vault.load_secrets(job.deployment_id)
            self._pending = _Kept(job, _prepare(action, node, held, job.timeout))
        except (errors.RemoteError, vault.VaultEmpty) as exc:
            self._pending = _Kept(job, None, _as_remote_error(exc))
        return job.event("node.started", job.started)

    def committed(self) -> None:
        self._ready, self._pending = self._pending, None

    def holds(self) -> bool:
        """Whether a committed action waits for this worker."""
        return self._ready is not None

    def take(self) -> _Kept | None:
        kept, self._ready = self._ready, None
        return kept


@dataclass(frozen=True)
class _Kept:
    job: Job
    prepared: tuple[Connection, dict[str, str], list[str]] | None
    error: errors.RemoteError | None = None


def execute_action(
    action_id: int, enqueue: Enqueue | None = None, sessions: SessionCache = SESSIONS
) -> str:
    """Run one queued NodeAction to a final status and, if it completed its phase, advance the run
    (running the next phase's first action here too: KeepFirst)."""
    keeper = KeepFirst(enqueue or default_enqueue())
    return _run_kept(keeper, sessions, _execute_queued(action_id, keeper, sessions))


def advance_and_run(
    run_id: int, enqueue: Enqueue | None = None, sessions: SessionCache = SESSIONS
) -> str:
    """A worker's advance of a run: start its next phase (or record its outcome) and run the
    phase's first action here (KeepFirst)."""
    keeper = KeepFirst(enqueue or default_enqueue())
    try:
        outcome = advance(run_id, keeper)
    except Exception:
        if not keeper.holds():  # nothing committed for this worker to run: the task fails as before
            raise
        # The phase committed, then something after it failed (sending the other actions to the
        # broker): run the kept action all the same; the reaper re-sends queued actions.
        log.exception("Run %s: the phase started but its follow-up failed", run_id)
        db.session.rollback()
        outcome = "phase-started"
    return _run_kept(keeper, sessions, outcome)


def _run_kept(keeper: KeepFirst, sessions: SessionCache, outcome: str) -> str:
    """Run the actions `keeper` kept, one after the other; the last outcome."""
    while (kept := keeper.take()) is not None:
        db.session.close()  # no transaction stays open while the script runs
        if kept.prepared is None:
            outcome = _record_failure(kept.job, kept.error, 0.0, keeper)
        else:
            outcome = _run(kept.job, *kept.prepared, keeper, sessions)
    return outcome


def _execute_queued(action_id: int, enqueue: Enqueue, sessions: SessionCache) -> str:
    """Claim a queued action, run its script, record how it ended."""
    if not claim(action_id, commit=False):
        db.session.rollback()
        return "not-claimed"
    action, run, node, credential = _load_claimed(action_id)
    job = Job.of(action, run)
    if run.status not in ACTIVE_RUN or run.cancel_requested:
        return _cancel_before_start(job, enqueue)
    try:
        conn, secure, masks = _prepare(action, node, vault.secrets_from(credential), job.timeout)
    except (errors.RemoteError, vault.VaultEmpty) as exc:
        db.session.commit()  # the claim: take the run's lock next without holding the action's
        return _record_failure(job, _as_remote_error(exc), 0.0, enqueue)
    db.session.commit()  # the claim, alone: node.started is written while the pipeline starts
    db.session.close()  # no transaction stays open while the script runs
    notice = StartNotice(current_app._get_current_object(), job)
    return _run(job, conn, secure, masks, enqueue, sessions, notice)


def _load_claimed(
    action_id: int,
) -> tuple[NodeAction, StepRun, Node | None, Credential | None]:
    """The claimed action, its run, its node (None if deleted) and the deployment's vault row
    (None if nothing is held) in one query."""
    return tuple(db.session.execute(_claimed_query(), {"action_id": action_id}).one())


@functools.cache
def _claimed_query() -> Select:
    return (
        select(NodeAction, StepRun, Node, Credential)
        .join(StepRun, StepRun.id == NodeAction.step_run_id)
        .outerjoin(Node, Node.id == NodeAction.node_id)
        .outerjoin(Credential, Credential.deployment_id == StepRun.deployment_id)
        .where(NodeAction.id == bindparam("action_id"))
        .execution_options(populate_existing=True)
    )


def _as_remote_error(exc: Exception) -> errors.RemoteError:
    if isinstance(exc, errors.RemoteError):
        return exc
    return errors.make(errors.AUTH_FAILED, str(exc))


def _cancel_before_start(job: Job, enqueue: Enqueue) -> str:
    values = {"error_category": errors.CANCELLED, "error_message": "The run ended first."}
    _end_action(job, "cancelled", values)
    after_action(job.run_id, job.phase, enqueue)
    return "cancelled"


def _prepare(
    action: NodeAction, node: Node | None, held: tuple[str, dict[str, str]], timeout: float
) -> tuple[Connection, dict[str, str], list[str]]:
    """(Connection, secure params, secret values to mask) from the node row and the vault's
    (user name, secrets)."""
    username, secrets = held
    secrets = {**secrets, vault.WINRM_USERNAME: username}
    if node is None:
        raise errors.make(
            errors.SCRIPT_ERROR, f"Node {action.node_name} no longer exists in the deployment."
        )
    missing = [entry for entry in action.secret_params.values() if entry not in secrets]
    if missing:
        raise errors.RemoteError(
            errors.AUTH_FAILED,
            f"Secret(s) {', '.join(missing)} are not held any more.",
            "Enter the step's secret fields again, then retry.",
        )
    secure = {param: secrets[entry] for param, entry in (action.secret_params or {}).items()}
    conn = connection_for(node, username, secrets.get(vault.WINRM_PASSWORD), timeout)
    masks = [v for k, v in secrets.items() if k != vault.WINRM_USERNAME and isinstance(v, str)]
    return conn, secure, masks


class StartNotice:
    """Writes a claimed action's node.started on a helper thread while this one starts the pipeline.

    Starting a pipeline is a request the node takes a few milliseconds to answer (longer when a pool
    must be opened first); the event's transaction overlaps it instead of preceding it. `wait` is
    called before anything else of the action reaches the log (upload progress, stream records,
    its end), so node.started still comes first. Should the write fail, `wait` raises and the
    action ends as failed (the runner stops the pipeline)."""

    def __init__(self, app: Flask, job: Job) -> None:
        self.future = _START_WRITERS.submit(self._publish, app, job)

    @staticmethod
    def _publish(app: Flask, job: Job) -> None:
        with app.app_context():  # its own database session
            publish_many(job.deployment_id, [job.event("node.started", job.started)])

    def wait(self) -> None:
        self.future.result()


# This process's node.started writers; the executor starts its threads on first use (after any fork).
_START_WRITERS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="node-started")


def _run(
    job: Job,
    conn,
    secure,
    masks,
    enqueue: Enqueue,
    sessions: SessionCache,
    notice: StartNotice | None = None,
) -> str:
    """Run the script on a pooled session, then record success or failure.

    notice: the action's node.started, being written (None: it was committed with the claim)."""
    app = current_app._get_current_object()
    session = sessions.checkout(conn, owner=job.deployment_id)
    started = time.monotonic()
    REDACTOR.hold(masks)
    try:
        result, failure, lost = _run_with_watchers(app, job, session, secure, masks, notice)
    finally:
        REDACTOR.release(masks)
        sessions.checkin(session)
    duration = time.monotonic() - started
    if notice is not None and failure is not None:
        with contextlib.suppress(Exception):  # a failed write is the failure itself
            notice.wait()  # the pipeline may never have started: its start comes before its end
    if lost:
        log.warning("Action %s on %s: %s", job.action_id, job.node, output_lost_notice(lost))
    if failure is not None:
        failure.message = redact(failure.message, masks)
        return _record_failure(job, failure, duration, enqueue, lost)
    return _record_success(job, redact(result.as_dict(), masks), duration, enqueue, lost)


def _run_with_watchers(
    app: Flask,
    job: Job,
    session: NodeSession,
    secure: dict,
    masks: list[str],
    notice: StartNotice | None,
) -> tuple[RunResult | None, errors.RemoteError | None, int]:
    """Run the script with the heartbeat/cancel watcher and the event pump around it; the
    result or failure, and how many stream records could not be written (EventPump.lost)."""
    interval = app.config.get("HEARTBEAT_SECONDS", 5)
    with (
        Heartbeat(app, job.action_id, job.run_id, interval) as beat,
        EventPump(app, job.action_id, job.deployment_id, job.base, masks) as pump,
    ):
        result, failure = _run_script(app, job, session, secure, notice, beat, pump)
    return result, failure, pump.lost  # read after the pump's exit has flushed what it can


def _run_script(
    app: Flask,
    job: Job,
    session: NodeSession,
    secure: dict,
    notice: StartNotice | None,
    beat: Heartbeat,
    pump: EventPump,
) -> tuple[RunResult | None, errors.RemoteError | None]:
    """The upload (if any) and the script itself, their records going to `pump`."""
    try:
        if job.upload:
            if notice is not None:
                notice.wait()  # before the copy's progress
            _upload(app, session, job.upload, pump.put)
        params = dict(job.parameters)
        on_started = notice.wait if notice is not None else None
        result = session.run(
            job.script, params, pump.put, job.timeout, beat.cancel_event, secure, on_started
        )
        return result, None
    except errors.RemoteError as err:
        return None, err
    except Exception as exc:
        log.exception("Action %s crashed", job.action_id)
        return None, errors.make(
            errors.SCRIPT_ERROR, f"Internal error: {type(exc).__name__}: {exc}"
        )


def _upload(app: Flask, session: NodeSession, upload: dict, on_record) -> None:
    """Copy an installer from instance/installers/ to the node before the action's script runs."""
    folder = Path(app.config["INSTANCE_DIR"]) / "installers"
    source = folder / Path(upload["source"]).name
    if not upload["source"] or not source.is_file():
        raise errors.make(
            errors.SCRIPT_ERROR,
            f"Installer {upload['source']!r} is not in {folder}; place it there and retry.",
        )
    total_mb = source.stat().st_size / 1_048_576

    def progress(sent: int, total: int) -> None:
        percent = int(sent * 100 / total) if total else 100
        status = f"{sent / 1_048_576:.1f} of {total_mb:.1f} MB"
        record = {"activity": "Copy installer", "status": status, "percent": percent}
        on_record({"stream": "progress", **record})

    session.upload(str(source), upload["destination"], progress)
    on_record({"stream": "information", "text": f"Copied {source.name} (checksum verified)."})


def _record_success(
    job: Job, summary: dict, duration: float, enqueue: Enqueue, lost: int = 0
) -> str:
    data = summary["data"]
    payload = {
        "status": "succeeded",
        "duration": round(duration, 3),
        "had_errors": summary["had_errors"],
        "data": data if len(json.dumps(data, default=str)) <= RESULT_EVENT_LIMIT else None,
        **_lost_payload(lost),
    }
    values = {"result": summary, "progress": 100, **_lost_values(lost)}
    return _finish_action(job, "succeeded", values, job.event("node.finished", payload), enqueue)


def _lost_payload(lost: int) -> dict[str, Any]:
    """What node.finished (or node.retrying) says about output that never reached the log."""
    return {"output_lost": lost, "output_lost_notice": output_lost_notice(lost)} if lost else {}


def _lost_values(lost: int) -> dict[str, Any]:
    """The action row's count of unrecorded output, added to what its earlier tries lost."""
    return {"output_lost": NodeAction.__table__.c.output_lost + lost} if lost else {}


def _finish_action(
    job: Job, status: str, values: dict[str, Any], finished: dict, enqueue: Enqueue
) -> str:
    """The action's end (see _close_action), retried while the database is unreachable (a
    restart) for DB_OUTAGE_SECONDS, so a script's result outlives a short outage."""
    work = functools.partial(_close_action, job, status, values, finished, enqueue)
    return _outlasting(job, "the end", work)


def _outlasting(job: Job, what: str, work: Callable[[], T]) -> T:
    """`work` retried while the database is unreachable, for DB_OUTAGE_SECONDS."""
    seconds = float(current_app.config.get("DB_OUTAGE_SECONDS", 30))
    return outage.retry_while_unreachable(work, seconds, f"{what} of action {job.action_id}")


def _close_action(
    job: Job,
    status: str,
    values: dict[str, Any],
    finished: dict,
    enqueue: Enqueue,
    *,
    advance_here: bool = True,
) -> str:
    """running -> final status with node.finished, and phase.finished if this closed the phase.

    Under the run's row lock (so of two nodes ending at once, the later one sees the other's status
    and closes the phase). The elected caller advances the run in the same transaction, so the
    action's end, the phase's end and the step's next phase (or outcome) commit together. Should
    advancing fail, the action's end is committed alone and a worker advances the run."""
    loaded = lock_run(job.run_id)
    if not _mark_ended(job, status, values):
        return _superseded(job, finished)
    outcome, closing, actions = close_phase(job.run_id, job.phase)
    if closing is None or not advance_here:
        items = [finished] if closing is None else [finished, closing]
        publish_many(job.deployment_id, items)
        if closing is not None:
            enqueue.advance(job.run_id)
        return outcome
    try:
        with held_events(job.deployment_id, [finished, closing]):
            return advance(job.run_id, enqueue, idle=True, loaded=loaded, actions=actions)
    except Exception as exc:
        if outage.connection_lost(exc):
            raise  # _finish_action tries the whole end again
        log.exception("Could not advance run %s after action %s", job.run_id, job.action_id)
        db.session.rollback()
        return _close_action(job, status, values, finished, enqueue, advance_here=False)


def _superseded(job: Job, finished: dict) -> str:
    """The reaper or a cancel ended the action first (a long outage, say): whatever output of it
    could not be recorded is still counted on its row and told in the log."""
    lost = finished["payload"].get("output_lost", 0)
    if not lost:
        db.session.commit()
        return "superseded"
    db.session.execute(
        update(NodeAction).where(NodeAction.id == job.action_id).values(_lost_values(lost))
    )
    notice = {"text": output_lost_notice(lost), "output_lost": lost}
    publish_many(job.deployment_id, [job.event("node.warning", notice)])
    return "superseded"


def _mark_ended(job: Job, status: str, values: dict[str, Any]) -> bool:
    """running -> `status`, unless the reaper (or a cancel) got there first."""
    move = ACTION_END[status]  # a Core UPDATE: nothing in this session holds the row
    ended = ACTION.update(move, NodeAction.id == job.action_id, finished_at=utcnow(), **values)
    return db.session.execute(ended).rowcount == 1


def _end_action(job: Job, status: str, values: dict[str, Any]) -> bool:
    """running -> final status without an event (an action that never started), committed."""
    done = _mark_ended(job, status, values)
    db.session.commit()
    return done


def _error_values(err: errors.RemoteError) -> dict[str, Any]:
    return {
        "error_category": err.category,
        "error_message": err.message[:4000],
        "remediation": err.remediation,
    }


def _may_retry(job: Job, err: errors.RemoteError) -> bool:
    if not err.transient or job.try_count >= current_app.config.get("ACTION_RETRY_LIMIT", 3):
        return False
    cancelled = db.session.scalar(select(StepRun.cancel_requested).where(StepRun.id == job.run_id))
    return not cancelled


def _requeue(job: Job, err: errors.RemoteError, enqueue: Enqueue, lost: int = 0) -> bool:
    """running -> queued with a backoff, announced by node.retrying; False if it was not running."""
    delay = current_app.config.get("ACTION_RETRY_BACKOFF_SECONDS", 2) * (2 ** (job.try_count - 1))
    values = {"error_category": err.category, "error_message": err.message[:4000]}
    requeue = ACTION.update(
        "requeue", NodeAction.id == job.action_id, **values, **_lost_values(lost)
    )
    requeued = db.session.execute(requeue).rowcount
    db.session.commit()
    if requeued != 1:
        return False
    payload = {
        "category": err.category,
        "message": err.message,
        "delay": delay,
        "try": job.try_count,
        **_lost_payload(lost),
    }
    publish_many(job.deployment_id, [job.event("node.retrying", payload)])
    enqueue.action(job.action_id, countdown=delay)
    return True


def _record_failure(
    job: Job, err: errors.RemoteError, duration: float, enqueue: Enqueue, lost: int = 0
) -> str:
    if _outlasting(
        job, "the retry", lambda: _may_retry(job, err) and _requeue(job, err, enqueue, lost)
    ):
        return "retrying"
    status = "cancelled" if err.category == errors.CANCELLED else "failed"
    payload = {"status": status, "duration": round(duration, 3), **err.as_dict()}
    finished = job.event("node.finished", {**payload, **_lost_payload(lost)})
    values = {**_error_values(err), **_lost_values(lost)}
    return _finish_action(job, status, values, finished, enqueue)
