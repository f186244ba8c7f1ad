"""Step runs as plain functions: start, advance, cancel, decide. Celery tasks only call these.

State lives in the database and every transition is a conditional UPDATE, so a task delivered twice, two
workers finishing the last actions of a phase at once, or a reaper racing a slow worker never repeat work:
- an action runs only after `queued -> running` succeeded for this caller (execution.actions.claim);
- a phase's completion is handed to `advance` by exactly one caller (`advanced_phase` compare-and-set);
- a new phase starts only if the run's `phase` is still the one the caller saw (compare-and-set);
- a run finishes only once (`status` still active).
Secrets never enter task arguments, NodeAction rows or events: actions record secret *names* and the worker
reads the values from the vault when it runs the script.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Protocol

from flask import current_app
from sqlalchemy import func, or_, select, update

from app.events.publish import publish, publish_many
from app.execution import vault
from app.extensions import db
from app.guides import get_guide
from app.models import Deployment, DeploymentStep, Node, NodeAction, StepRun, utcnow
from app.remote import errors
from app.wizard.context import run_view
from app.wizard.engine import ActionResult, Finish, Phase, RunView, Step, blocking_step

log = logging.getLogger(__name__)

ACTIVE_RUN = ("queued", "running")
PENDING_ACTION = ("queued", "running")
DECISIONS = ("retry", "retry_failed", "skip", "abort", "exclude")
MAX_EMPTY_PHASES = 50


class StepBlocked(Exception):
    """The request cannot be honoured now; the message tells the operator why."""


class Enqueue(Protocol):
    """Where follow-up work goes (Celery in production, a list or direct calls in tests)."""

    def advance(self, run_id: int, countdown: float = 0) -> None: ...

    def action(self, action_id: int, countdown: float = 0) -> None: ...


class CeleryEnqueue:
    """Send ids (never secrets) to the Celery tasks, through this Flask app's own Celery app."""

    ADVANCE = "app.execution.tasks.advance_step_run"
    ACTION = "app.execution.tasks.run_node_action"

    def _send(self, name: str, arg: int, countdown: float) -> None:
        current_app.extensions["celery"].send_task(name, (arg,), countdown=countdown or None)

    def advance(self, run_id: int, countdown: float = 0) -> None:
        self._send(self.ADVANCE, run_id, countdown)

    def action(self, action_id: int, countdown: float = 0) -> None:
        self._send(self.ACTION, action_id, countdown)


def default_enqueue() -> Enqueue:
    """The app's dispatcher: app.extensions['amsw_enqueue'] if a test set one, else Celery."""
    return current_app.extensions.get("amsw_enqueue") or CeleryEnqueue()


# --------------------------------------------------------------------------- starting a run


def _lock_deployment(deployment_id: int) -> Deployment:
    """Take the deployment's row lock (write lock on SQLite) so start/decide requests serialise."""
    db.session.execute(
        update(Deployment).where(Deployment.id == deployment_id).values(last_activity_at=utcnow())
    )
    deployment = db.session.get(Deployment, deployment_id)
    if deployment is None:
        raise StepBlocked("No such deployment.")
    return deployment


def _active_run(deployment_id: int) -> StepRun | None:
    return db.session.scalar(
        select(StepRun)
        .where(StepRun.deployment_id == deployment_id, StepRun.status.in_(ACTIVE_RUN))
        .limit(1)
    )


def _check_can_start(deployment: Deployment, step: Step) -> None:
    guide = get_guide(deployment.guide_key)
    if deployment.status == "aborted":
        raise StepBlocked("This deployment was aborted; start a new one.")
    if not step.runnable:
        raise StepBlocked(f"'{step.title}' has nothing to run.")
    if (active := _active_run(deployment.id)) is not None:
        raise StepBlocked(f"A run of '{guide.step(active.step_key).title}' is still in progress.")
    statuses = {s.step_key: s.status for s in deployment.steps}
    if (blocker := blocking_step(guide, step.key, statuses)) is not None:
        raise StepBlocked(f"Finish or skip '{blocker.title}' before running '{step.title}'.")
    if not deployment.active_nodes:
        raise StepBlocked("Every node is excluded; there is nothing to run on.")
    if vault.WINRM_PASSWORD not in vault.secret_names(deployment.id):
        raise StepBlocked("Enter the WinRM user name and password to run this step.")


def _create_run(deployment: Deployment, step: Step, actor_id: int | None, options: dict) -> StepRun:
    attempt = (
        db.session.scalar(
            select(func.max(StepRun.attempt)).where(
                StepRun.deployment_id == deployment.id, StepRun.step_key == step.key
            )
        )
        or 0
    ) + 1
    record = deployment.step(step.key)
    inputs = {k: v for k, v in (record.inputs or {}).items() if k not in step.secret_fields}
    run = StepRun(
        deployment_id=deployment.id,
        step_key=step.key,
        attempt=attempt,
        status="queued",
        actor_id=actor_id,
        inputs=inputs,
        options=options,
    )
    db.session.add(run)
    record.status = "in_progress"
    record.updated_by_id = actor_id
    deployment.status = "in_progress"
    deployment.current_step = step.key
    db.session.flush()
    return run


def start_step_run(
    deployment_id: int,
    step_key: str,
    actor_id: int | None,
    enqueue: Enqueue | None = None,
    options: dict | None = None,
) -> StepRun:
    """Create the next attempt of a step and queue its first advance (committed before enqueue)."""
    deployment = _lock_deployment(deployment_id)
    try:
        step = get_guide(deployment.guide_key).step(step_key)
    except KeyError:
        db.session.rollback()
        raise StepBlocked(f"Unknown step {step_key!r}.") from None
    try:
        _check_can_start(deployment, step)
    except StepBlocked:
        db.session.rollback()
        raise
    run = _create_run(deployment, step, actor_id, options or {})
    payload = {"attempt": run.attempt, "title": step.title, "decision": run.options.get("decision")}
    if run.options.get("nodes"):
        payload["nodes"] = run.options["nodes"]
    publish(
        deployment.id,
        "step.started",
        payload,
        step_key=step.key,
        step_run_id=run.id,
        actor_id=actor_id,
    )
    (enqueue or default_enqueue()).advance(run.id)
    return run


# --------------------------------------------------------------------------- advancing


def _results(run_id: int) -> dict[str, dict[str, ActionResult]]:
    """Results of this attempt's completed phases, keyed by phase then node."""
    rows = db.session.scalars(
        select(NodeAction).where(NodeAction.step_run_id == run_id).order_by(NodeAction.id)
    )
    phases: dict[str, dict[str, ActionResult]] = {}
    pending: set[str] = set()
    for a in rows:
        if a.status in PENDING_ACTION:
            pending.add(a.phase)
        data = (a.result or {}).get("data") if isinstance(a.result, dict) else None
        phases.setdefault(a.phase, {})[a.node_name] = ActionResult(
            node=a.node_name,
            script=a.script,
            status=a.status,
            data=data,
            error_category=a.error_category,
            error_message=a.error_message,
        )
    return {name: results for name, results in phases.items() if name not in pending}


def build_view(run: StepRun, deployment: Deployment) -> RunView:
    """The RunView for `run`: saved inputs of every step, this run's snapshot, its nodes and results."""
    view = run_view(deployment, run.step_key, vault.secret_names(deployment.id))
    view.inputs = dict(run.inputs or {})
    view.all_inputs[run.step_key] = dict(run.inputs or {})
    only = (run.options or {}).get("nodes")
    options = dict(run.options or {})
    options["all_nodes"] = [n.name for n in view.nodes]
    if only:
        view.nodes = tuple(n for n in view.nodes if n.name in only)
    view.options = options
    view.results = _results(run.id)
    return view


def _pending_count(run_id: int, phase: str | None = None) -> int:
    query = select(func.count()).where(
        NodeAction.step_run_id == run_id, NodeAction.status.in_(PENDING_ACTION)
    )
    if phase is not None:
        query = query.where(NodeAction.phase == phase)
    return db.session.scalar(query) or 0


def _decide(step: Step, view: RunView) -> Phase | Finish:
    try:
        if view.options.get("mode") == "verify":  # a read-only drift check (app.handover.drift)
            from app.handover import drift

            return drift.decide(step, view)
        return step.advance(view)
    except Exception as exc:
        log.exception("Step %s failed to decide", step.key)
        return Finish(
            "needs_attention",
            f"The step could not decide what to do next: {type(exc).__name__}: {exc}",
        )


def advance(run_id: int, enqueue: Enqueue | None = None) -> str:
    """Ask the step for its next phase and queue it, or record its outcome. Returns what happened."""
    enqueue = enqueue or default_enqueue()
    run = db.session.get(StepRun, run_id)
    if run is None or run.status not in ACTIVE_RUN:
        return "inactive"
    if run.cancel_requested:
        return _finish_cancelled(run) if _pending_count(run.id) == 0 else "cancelling"
    if _pending_count(run.id):
        return "pending"
    deployment = db.session.get(Deployment, run.deployment_id)
    step = get_guide(deployment.guide_key).step(run.step_key)
    view = build_view(run, deployment)
    for _ in range(MAX_EMPTY_PHASES):
        decision = _decide(step, view)
        if isinstance(decision, Finish):
            return _finish(run, deployment, decision)
        if decision.name in view.results:
            return _finish(
                run,
                deployment,
                Finish("needs_attention", f"The step asked for phase '{decision.name}' twice."),
            )
        if not decision.actions:
            view.results[decision.name] = {}
            continue
        if decision.wait_before and (run.options or {}).get("waited") != decision.name:
            return _wait(run, decision, enqueue)
        return _start_phase(run, deployment, decision, enqueue)
    return _finish(
        run, deployment, Finish("needs_attention", "The step produced too many empty phases.")
    )


def _wait(run: StepRun, phase: Phase, enqueue: Enqueue) -> str:
    run.options = {**(run.options or {}), "waited": phase.name}
    run.status = "running"
    run.started_at = run.started_at or utcnow()
    payload = {"phase": phase.name, "title": phase.title, "seconds": phase.wait_before}
    publish(run.deployment_id, "phase.waiting", payload, step_key=run.step_key, step_run_id=run.id)
    enqueue.advance(run.id, countdown=phase.wait_before)
    return "waiting"


def _start_phase(run: StepRun, deployment: Deployment, phase: Phase, enqueue: Enqueue) -> str:
    nodes = {n.name: n for n in deployment.nodes}
    unknown = [a.node for a in phase.actions if a.node not in nodes]
    if unknown:
        return _finish(
            run,
            deployment,
            Finish("needs_attention", f"Phase '{phase.name}' names unknown nodes {unknown}."),
        )
    claimed = db.session.execute(
        update(StepRun)
        .where(
            StepRun.id == run.id, StepRun.status.in_(ACTIVE_RUN), _same(StepRun.phase, run.phase)
        )
        .values(
            phase=phase.name,
            status="running",
            started_at=func.coalesce(StepRun.started_at, utcnow()),
        )
    ).rowcount
    if claimed != 1:
        db.session.rollback()
        return "lost-race"
    actions = [_new_action(run, nodes[a.node], phase, a) for a in phase.actions]
    db.session.add_all(actions)
    db.session.flush()
    payload = {
        "phase": phase.name,
        "title": phase.title,
        "changes_state": phase.changes_state,
        "actions": [
            {"id": a.id, "node": a.node_name, "script": a.script, "label": a.label} for a in actions
        ],
    }
    publish(run.deployment_id, "phase.started", payload, step_key=run.step_key, step_run_id=run.id)
    for action in actions:
        enqueue.action(action.id)
    return "phase-started"


def _same(column, value):
    return column.is_(None) if value is None else column == value


def _new_action(run: StepRun, node: Node, phase: Phase, action) -> NodeAction:
    return NodeAction(
        step_run_id=run.id,
        node_id=node.id,
        node_name=node.name,
        phase=phase.name,
        script=action.script,
        parameters=dict(action.params),
        secret_params=dict(action.secrets),
        label=action.label or None,
        timeout_seconds=action.timeout,
        upload={"source": action.upload[0], "destination": action.upload[1]}
        if action.upload
        else None,
        status="queued",
    )


def after_action(run_id: int, phase: str, enqueue: Enqueue | None = None) -> str:
    """Called when an action of `phase` ended: the caller that completes the phase advances the run."""
    if _pending_count(run_id, phase):
        return "pending"
    elected = db.session.execute(
        update(StepRun)
        .where(
            StepRun.id == run_id,
            StepRun.status.in_(ACTIVE_RUN),
            StepRun.phase == phase,
            or_(StepRun.advanced_phase.is_(None), StepRun.advanced_phase != phase),
        )
        .values(advanced_phase=phase)
    ).rowcount
    db.session.commit()
    if elected != 1:
        return "not-elected"
    _publish_phase_finished(run_id, phase)
    return advance(run_id, enqueue)


def _publish_phase_finished(run_id: int, phase: str) -> None:
    run = db.session.get(StepRun, run_id)
    rows = db.session.scalars(
        select(NodeAction).where(NodeAction.step_run_id == run_id, NodeAction.phase == phase)
    )
    statuses = {a.node_name: a.status for a in rows}
    publish(
        run.deployment_id,
        "phase.finished",
        {"phase": phase, "nodes": statuses},
        step_key=run.step_key,
        step_run_id=run.id,
    )


# --------------------------------------------------------------------------- finishing


def _end_run(run: StepRun, status: str) -> bool:
    """Compare-and-set the run's final status; False when someone else already ended it."""
    ended = db.session.execute(
        update(StepRun)
        .where(StepRun.id == run.id, StepRun.status.in_(ACTIVE_RUN))
        .values(status=status, finished_at=utcnow())
    ).rowcount
    if ended != 1:
        db.session.rollback()
        return False
    db.session.refresh(run)
    return True


def _next_step_key(deployment: Deployment, step_key: str) -> str:
    guide = get_guide(deployment.guide_key)
    _, after = guide.neighbours(step_key)
    return after.key if after is not None else step_key


def _all_runnable_finished(deployment: Deployment) -> bool:
    guide = get_guide(deployment.guide_key)
    statuses = {s.step_key: s.status for s in deployment.steps}
    return all(statuses.get(s.key) in ("done", "skipped") for s in guide.steps if s.runnable)


def _settle_deployment(deployment: Deployment, step_key: str, paused: bool) -> list[dict]:
    """Deployment status after a step ended; returns extra events to publish."""
    if paused:
        deployment.status = "paused"
        return []
    deployment.current_step = _next_step_key(deployment, step_key)
    if _all_runnable_finished(deployment):
        deployment.status = "completed"
        vault.wipe(deployment.id, commit=False)
        return [{"kind": "deployment.completed", "payload": {}}]
    deployment.status = "in_progress"
    return []


def _finish(run: StepRun, deployment: Deployment, finish: Finish) -> str:
    if (run.options or {}).get("mode") == "verify":
        from app.handover import drift

        return drift.finish(run, deployment, finish)
    if not _end_run(run, "succeeded" if finish.status == "done" else "failed"):
        return "already-finished"
    run.outcome = finish.as_dict()
    record = deployment.step(run.step_key)
    record.status = "done" if finish.status == "done" else "needs_attention"
    extra = _settle_deployment(deployment, run.step_key, paused=finish.status != "done")
    base = {"step_key": run.step_key, "step_run_id": run.id}
    items = [{**base, "kind": "step.finished", "payload": _finish_payload(finish)}]
    if finish.status != "done":
        items.append({**base, "kind": "step.paused", "payload": {"reason": finish.summary}})
    publish_many(deployment.id, items + [{**base, **e} for e in extra])
    _close_sessions(run.id)
    if finish.status != "done":
        _notify_paused(deployment.id, run.step_key, finish.summary)
    return finish.status


def _notify_paused(deployment_id: int, step_key: str, reason: str) -> None:
    """Optional webhook / e-mail to the person who must decide (app.handover.notify)."""
    from app.handover.notify import on_paused

    on_paused(deployment_id, step_key, reason)


def _finish_payload(finish: Finish) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for check in finish.checks:
        counts[check.status] = counts.get(check.status, 0) + 1
    return {
        "status": finish.status,
        "summary": finish.summary,
        "checks": counts,
        "failed_nodes": list(finish.failed_nodes),
    }


def _finish_cancelled(run: StepRun) -> str:
    if not _end_run(run, "cancelled"):
        return "already-finished"
    deployment = db.session.get(Deployment, run.deployment_id)
    run.outcome = Finish("needs_attention", "Cancelled on request.").as_dict()
    deployment.step(run.step_key).status = "needs_attention"
    _settle_deployment(deployment, run.step_key, paused=True)
    base = {"step_key": run.step_key, "step_run_id": run.id}
    publish_many(
        deployment.id,
        [
            {**base, "kind": "step.cancelled", "payload": {}},
            {**base, "kind": "step.paused", "payload": {"reason": "Cancelled on request."}},
        ],
    )
    _close_sessions(run.id)
    return "cancelled"


def mark_interrupted(run: StepRun, reason: str) -> bool:
    """End a run as interrupted (reaper): the step needs a person, resume = retry."""
    if not _end_run(run, "interrupted"):
        return False
    deployment = db.session.get(Deployment, run.deployment_id)
    run.outcome = Finish("needs_attention", reason).as_dict()
    deployment.step(run.step_key).status = "needs_attention"
    _settle_deployment(deployment, run.step_key, paused=True)
    db.session.execute(
        update(NodeAction)
        .where(NodeAction.step_run_id == run.id, NodeAction.status == "queued")
        .values(status="cancelled", finished_at=utcnow(), error_category=errors.INTERRUPTED)
    )
    base = {"step_key": run.step_key, "step_run_id": run.id}
    publish_many(
        deployment.id,
        [{**base, "kind": "step.paused", "payload": {"reason": reason, "interrupted": True}}],
    )
    _notify_paused(deployment.id, run.step_key, reason)
    return True


def _close_sessions(run_id: int) -> None:
    from app.execution.actions import SESSIONS

    SESSIONS.close_where(lambda key: key[0] == run_id)


# --------------------------------------------------------------------------- operator requests


def cancel(run_id: int, actor_id: int | None = None, enqueue: Enqueue | None = None) -> str:
    """Ask a run to stop: queued actions are cancelled now, running ones are stopped by their heartbeat."""
    requested = db.session.execute(
        update(StepRun)
        .where(StepRun.id == run_id, StepRun.status.in_(ACTIVE_RUN))
        .values(cancel_requested=True)
    ).rowcount
    if requested != 1:
        db.session.rollback()
        return "inactive"
    db.session.execute(
        update(NodeAction)
        .where(NodeAction.step_run_id == run_id, NodeAction.status == "queued")
        .values(
            status="cancelled",
            finished_at=utcnow(),
            error_category=errors.CANCELLED,
            error_message="Cancelled before it started.",
        )
    )
    run = db.session.get(StepRun, run_id)
    publish(
        run.deployment_id,
        "step.cancel_requested",
        {},
        step_key=run.step_key,
        step_run_id=run.id,
        actor_id=actor_id,
    )
    if _pending_count(run_id) == 0:
        return _finish_cancelled(run)
    return "cancelling"


def _failed_nodes(run: StepRun) -> list[str]:
    outcome = run.outcome or {}
    failed = list(outcome.get("failed_nodes") or [])
    failed += [
        a.node_name for a in run.actions if a.status in ("failed", "interrupted", "cancelled")
    ]
    return sorted(set(failed))


def _latest_run(deployment_id: int, step_key: str) -> StepRun | None:
    return db.session.scalar(
        select(StepRun)
        .where(StepRun.deployment_id == deployment_id, StepRun.step_key == step_key)
        .order_by(StepRun.attempt.desc())
        .limit(1)
    )


def resolve_pause(
    deployment_id: int,
    step_key: str,
    decision: str,
    reason: str | None,
    nodes: list[str] | None,
    actor_id: int | None,
    enqueue: Enqueue | None = None,
) -> StepRun | None:
    """Apply the operator's decision on a paused step: retry, retry_failed, skip, abort or exclude."""
    reason = (reason or "").strip()
    if decision not in DECISIONS:
        raise StepBlocked(f"Unknown decision {decision!r}.")
    deployment = _lock_deployment(deployment_id)
    record = deployment.step(step_key)
    if record is None:
        db.session.rollback()
        raise StepBlocked(f"Unknown step {step_key!r}.")
    if decision == "abort":
        return _abort(deployment, step_key, reason, actor_id)
    if record.status != "needs_attention":
        db.session.rollback()
        raise StepBlocked("This step is not waiting for a decision.")
    last = _latest_run(deployment_id, step_key)
    if decision == "skip":
        return _skip(deployment, record, reason, actor_id)
    options: dict[str, Any] = {"decision": decision, "retry_of": last.id if last else None}
    if decision == "retry_failed":
        options["nodes"] = _retry_failed_nodes(deployment, step_key, last)
    if decision == "exclude":
        _exclude(deployment, step_key, nodes or [], reason, actor_id)
    return start_step_run(deployment_id, step_key, actor_id, enqueue, options)


def _retry_failed_nodes(deployment: Deployment, step_key: str, last: StepRun | None) -> list[str]:
    step = get_guide(deployment.guide_key).step(step_key)
    if not step.per_node_retry:
        db.session.rollback()
        raise StepBlocked(f"'{step.title}' must run on every node together; choose Retry.")
    failed = [
        n
        for n in (_failed_nodes(last) if last else [])
        if n in {x.name for x in deployment.active_nodes}
    ]
    if not failed:
        db.session.rollback()
        raise StepBlocked("No node failed in the last attempt; choose Retry.")
    return failed


def _skip(
    deployment: Deployment, record: DeploymentStep, reason: str, actor_id: int | None
) -> None:
    if not reason:
        db.session.rollback()
        raise StepBlocked("Give a reason to skip: it is recorded with the deployment.")
    record.status = "skipped"
    record.skip_reason = reason
    record.updated_by_id = actor_id
    extra = _settle_deployment(deployment, record.step_key, paused=False)
    items = [
        {
            "kind": "step.skipped",
            "payload": {"reason": reason},
            "step_key": record.step_key,
            "actor_id": actor_id,
        }
    ]
    publish_many(deployment.id, items + [{**e, "actor_id": actor_id} for e in extra])
    return None


def _abort(deployment: Deployment, step_key: str, reason: str, actor_id: int | None) -> None:
    if not reason:
        db.session.rollback()
        raise StepBlocked("Give a reason to abort: it is recorded with the deployment.")
    active = _active_run(deployment.id)
    deployment.status = "aborted"
    vault.wipe(deployment.id, commit=False)
    publish(
        deployment.id,
        "deployment.aborted",
        {"reason": reason},
        step_key=step_key,
        actor_id=actor_id,
    )
    if active is not None:
        cancel(active.id, actor_id)
    return None


def _exclude(
    deployment: Deployment, step_key: str, names: list[str], reason: str, actor_id: int | None
) -> None:
    if not reason or not names:
        db.session.rollback()
        raise StepBlocked("Choose the nodes to exclude and give a reason.")
    chosen = [n for n in deployment.active_nodes if n.name in set(names)]
    if not chosen or len(chosen) == len(deployment.active_nodes):
        db.session.rollback()
        raise StepBlocked("Exclude at least one node and keep at least one.")
    for node in chosen:
        node.excluded = True
        node.exclude_reason = reason
    publish(
        deployment.id,
        "nodes.excluded",
        {"nodes": [n.name for n in chosen], "reason": reason},
        step_key=step_key,
        actor_id=actor_id,
    )


# --------------------------------------------------------------------------- running one action


def _end_action(
    action_id: int, status: str, values: dict[str, Any], finished: tuple[int, dict] | None = None
) -> bool:
    """running -> final status, unless the reaper (or a cancel) got there first.

    `finished` = (deployment_id, node.finished event) is committed in the same transaction, so no
    other node can close the phase (phase.finished) before this node's own event is written.
    """
    done = db.session.execute(
        update(NodeAction)
        .where(NodeAction.id == action_id, NodeAction.status == "running")
        .values(status=status, finished_at=utcnow(), **values)
    ).rowcount
    if done == 1 and finished is not None:
        publish_many(finished[0], [finished[1]])
    else:
        db.session.commit()
    return done == 1


def _error_values(err: errors.RemoteError) -> dict[str, Any]:
    return {
        "error_category": err.category,
        "error_message": err.message[:4000],
        "remediation": err.remediation,
    }


def _prepare(action: NodeAction) -> tuple[Any, dict[str, str], list[str]]:
    """(Connection, secure params, secret values to mask) from the node row and the vault."""
    from app.execution.actions import connection_for

    username, secrets = vault.load_secrets(action.step_run.deployment_id)
    secrets = {**secrets, vault.WINRM_USERNAME: username}
    node = db.session.get(Node, action.node_id) if action.node_id else None
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
    timeout = action.timeout_seconds or current_app.config.get("ACTION_TIMEOUT_SECONDS", 1800)
    conn = connection_for(node, username, secrets.get(vault.WINRM_PASSWORD), timeout)
    masks = [v for k, v in secrets.items() if k != vault.WINRM_USERNAME and isinstance(v, str)]
    return conn, secure, masks


def execute_action(
    action_id: int, runner_factory=None, publish_fn=None, enqueue: Enqueue | None = None
) -> str:
    """Run one queued NodeAction to a final status and, if it completed its phase, advance the run.

    `runner_factory(conn, key)` returns an object with `.run(script, params, on_record, timeout, cancel_event,
    secure_params)` (a NodeSession by default); `publish_fn` is accepted for symmetry with tests and
    defaults to app.events.publish.publish_many (records go through the EventPump).
    """
    from app.execution.actions import REDACTOR, claim, default_runner_factory

    enqueue = enqueue or default_enqueue()
    if not claim(action_id):
        return "not-claimed"
    action = db.session.get(NodeAction, action_id)
    run = action.step_run
    base = {
        "step_key": run.step_key,
        "node": action.node_name,
        "step_run_id": run.id,
        "node_action_id": action.id,
    }
    if run.status not in ACTIVE_RUN or run.cancel_requested:
        _end_action(
            action_id,
            "cancelled",
            {"error_category": errors.CANCELLED, "error_message": "The run ended first."},
        )
        after_action(run.id, action.phase, enqueue)
        return "cancelled"
    try:
        conn, secure, masks = _prepare(action)
    except (errors.RemoteError, vault.VaultEmpty) as exc:
        err = (
            exc
            if isinstance(exc, errors.RemoteError)
            else errors.make(errors.AUTH_FAILED, str(exc))
        )
        return _record_failure(action, run, base, err, 0.0, enqueue)
    deployment_id, phase = run.deployment_id, action.phase
    publish_many(
        deployment_id,
        [
            {
                **base,
                "kind": "node.started",
                "payload": {
                    "script": action.script,
                    "label": action.label,
                    "phase": phase,
                    "try": action.try_count,
                },
            }
        ],
    )
    app = current_app._get_current_object()
    timeout = action.timeout_seconds or app.config.get("ACTION_TIMEOUT_SECONDS", 1800)
    key = (run.id, action.node_name)
    runner = (runner_factory or default_runner_factory)(conn, key)
    started = time.monotonic()
    result, failure = None, None
    REDACTOR.hold(masks)
    try:
        result, failure = _run_with_watchers(
            app, action, run, runner, timeout, secure, masks, deployment_id
        )
    finally:
        REDACTOR.release(masks)
    duration = time.monotonic() - started
    from app.execution.actions import redact

    if failure is not None:
        failure.message = redact(failure.message, masks)
        return _record_failure(action, run, base, failure, duration, enqueue)
    summary = redact(result.as_dict(), masks)
    payload = {
        "status": "succeeded",
        "duration": round(duration, 3),
        "had_errors": summary["had_errors"],
        "data": summary["data"] if len(json.dumps(summary["data"], default=str)) <= 4000 else None,
    }
    finished = (deployment_id, {**base, "kind": "node.finished", "payload": payload})
    if not _end_action(action_id, "succeeded", {"result": summary, "progress": 100}, finished):
        return "superseded"
    return after_action(run.id, phase, enqueue)


def _run_with_watchers(app, action, run, runner, timeout, secure, masks, deployment_id):
    """Run the script with the heartbeat/cancel watcher and the event pump around it."""
    from app.execution.actions import EventPump, Heartbeat

    result, failure = None, None
    with (
        Heartbeat(app, action.id, run.id, app.config.get("HEARTBEAT_SECONDS", 5)) as beat,
        EventPump(app, action, deployment_id, masks) as pump,
    ):
        try:
            if action.upload:
                _upload(app, runner, action.upload, pump.put)
            result = runner.run(
                action.script,
                dict(action.parameters or {}),
                pump.put,
                timeout,
                beat.cancel_event,
                secure,
            )
        except errors.RemoteError as err:
            failure = err
        except Exception as exc:
            log.exception("Action %s crashed", action.id)
            failure = errors.make(
                errors.SCRIPT_ERROR, f"Internal error: {type(exc).__name__}: {exc}"
            )
    return result, failure


def _upload(app, runner, upload: dict, on_record) -> None:
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
        on_record(
            {
                "stream": "progress",
                "activity": "Copy installer",
                "status": status,
                "percent": percent,
            }
        )

    runner.upload(str(source), upload["destination"], progress)
    on_record({"stream": "information", "text": f"Copied {source.name} (checksum verified)."})


def _record_failure(
    action, run, base, err: errors.RemoteError, duration: float, enqueue: Enqueue
) -> str:
    limit = current_app.config.get("ACTION_RETRY_LIMIT", 3)
    deployment_id, phase = run.deployment_id, action.phase
    if err.transient and action.try_count < limit and not run.cancel_requested:
        delay = current_app.config.get("ACTION_RETRY_BACKOFF_SECONDS", 2) * (
            2 ** (action.try_count - 1)
        )
        requeued = db.session.execute(
            update(NodeAction)
            .where(NodeAction.id == action.id, NodeAction.status == "running")
            .values(status="queued", error_category=err.category, error_message=err.message[:4000])
        ).rowcount
        db.session.commit()
        if requeued == 1:
            publish_many(
                deployment_id,
                [
                    {
                        **base,
                        "kind": "node.retrying",
                        "payload": {
                            "category": err.category,
                            "message": err.message,
                            "delay": delay,
                            "try": action.try_count,
                        },
                    }
                ],
            )
            enqueue.action(action.id, countdown=delay)
            return "retrying"
    status = "cancelled" if err.category == errors.CANCELLED else "failed"
    payload = {"status": status, "duration": round(duration, 3), **err.as_dict()}
    finished = (deployment_id, {**base, "kind": "node.finished", "payload": payload})
    if not _end_action(action.id, status, _error_values(err), finished):
        return "superseded"
    return after_action(run.id, phase, enqueue)
