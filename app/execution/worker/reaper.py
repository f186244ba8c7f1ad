"""Nothing stays "running" forever: stale heartbeats become `interrupted`, lost work is re-queued.

Run by the beat schedule (`reap` task) every REAPER_INTERVAL_SECONDS and callable directly:
- a `running` action whose heartbeat is older than REAPER_GRACE_SECONDS (its worker died, was killed -9 or
  lost the database) is marked `interrupted` with an event, its StepRun is ended `interrupted`, the step
  needs attention and the deployment is paused; `resume` (= retry) starts a new attempt that begins with
  detection, so nothing done before the crash is repeated blindly;
- a `queued` action older than the grace period is re-sent (the atomic claim makes duplicates harmless);
- a running run with no pending action whose last action ended long ago (the advancer died) is advanced.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select

from app.events.publish import publish_many
from app.execution import health, outbox, vault
from app.execution.dispatch import default_enqueue
from app.execution.machine.decisions import resolve_pause
from app.execution.machine.finishing import mark_interrupted
from app.execution.machine.phases import advance
from app.execution.machine.state import ACTIVE_RUN, pending_count
from app.execution.machine.transitions import ACTION
from app.extensions import db
from app.models import NodeAction, StepRun, utcnow
from app.remote import errors

log = logging.getLogger(__name__)


def _grace() -> timedelta:
    return timedelta(seconds=current_app.config.get("REAPER_GRACE_SECONDS", 30))


def reap_stale_actions() -> list[int]:
    """Mark running actions with a stale heartbeat interrupted; returns their ids."""
    cutoff = utcnow() - _grace()
    stale = db.session.scalars(
        select(NodeAction)
        .where(NodeAction.status == "running", NodeAction.heartbeat_at < cutoff)
        .order_by(NodeAction.step_run_id, NodeAction.id)
    ).all()
    by_run: dict[int, list[NodeAction]] = {}
    for action in stale:
        by_run.setdefault(action.step_run_id, []).append(action)
    return [a for actions in by_run.values() for a in _interrupt_run(actions, cutoff)]


def _interrupt_run(actions: list[NodeAction], cutoff) -> list[int]:
    """A run's stale actions -> interrupted, each with its event, then one step.paused naming
    every node (after every action.interrupted it sums up). Returns the ids it interrupted."""
    run = db.session.get(StepRun, actions[0].step_run_id)
    ended = [(a.id, a.node_name, a.script, _message(a)) for a in actions]
    ended = [item for item in ended if _mark_stale(item[0], item[3], cutoff)]
    if not ended:
        db.session.commit()
        return []
    remediation = errors.REMEDIATION[errors.INTERRUPTED]
    publish_many(run.deployment_id, [_event(run, item, remediation) for item in ended])
    stopped = ", ".join(f"{script} on {node}" for _, node, script, _ in ended)
    mark_interrupted(run, f"The worker running {stopped} stopped (no heartbeat).")
    return [item[0] for item in ended]


def _message(action: NodeAction) -> str:
    worker = action.worker or "its worker"
    return f"No heartbeat from {worker} since {action.heartbeat_at:%H:%M:%S} UTC."


def _mark_stale(action_id: int, message: str, cutoff) -> bool:
    """running -> interrupted if still stale (not committed: the events join the transaction)."""
    return (
        db.session.execute(
            ACTION.update(
                "interrupt",
                NodeAction.id == action_id,
                NodeAction.heartbeat_at < cutoff,
                finished_at=utcnow(),
                error_category=errors.INTERRUPTED,
                error_message=message,
                remediation=errors.REMEDIATION[errors.INTERRUPTED],
            )
        ).rowcount
        == 1
    )


def _event(run: StepRun, item: tuple, remediation: str) -> dict:
    action_id, node, _, message = item
    return {
        "kind": "action.interrupted",
        "step_key": run.step_key,
        "node": node,
        "step_run_id": run.id,
        "node_action_id": action_id,
        "payload": {"message": message, "remediation": remediation},
    }


def requeue_lost_actions(enqueue=None) -> list[int]:
    """Re-send queued actions of active runs that nobody picked up within the grace period."""
    cutoff = utcnow() - _grace() * 4
    ids = db.session.scalars(
        select(NodeAction.id)
        .join(StepRun, StepRun.id == NodeAction.step_run_id)
        .where(
            NodeAction.status == "queued",
            NodeAction.created_at < cutoff,
            StepRun.status.in_(ACTIVE_RUN),
        )
    ).all()
    enqueue = enqueue or default_enqueue()
    for action_id in ids:
        enqueue.action(action_id)
    return list(ids)


def advance_stalled_runs(enqueue=None) -> list[int]:
    """Runs still running with every action ended long ago: their advancer died between steps."""
    cutoff = utcnow() - _grace()
    last_end = (
        select(NodeAction.step_run_id, func.max(NodeAction.finished_at).label("ended"))
        .group_by(NodeAction.step_run_id)
        .subquery()
    )
    runs = db.session.scalars(
        select(StepRun)
        .join(last_end, last_end.c.step_run_id == StepRun.id)
        .where(StepRun.status == "running", last_end.c.ended < cutoff)
    ).all()
    advanced = []
    for run in runs:
        if pending_count(run.id) == 0 and run.options.waited != run.phase:
            advance(run.id, enqueue)
            advanced.append(run.id)
    return advanced


def reap(enqueue=None) -> dict:
    """One sweep; returns what it did (logged by the task)."""
    health.record_beat()
    result = {
        "resent": outbox.flush(),
        "interrupted": reap_stale_actions(),
        "requeued": requeue_lost_actions(enqueue),
        "advanced": advance_stalled_runs(enqueue),
        "credentials_wiped": vault.wipe_expired(),
    }
    db.session.close()
    return result


def resume(deployment_id: int, step_key: str, actor_id: int | None, enqueue=None):
    """Resume an interrupted (or failed) step: a new attempt that starts with detection."""
    return resolve_pause(deployment_id, step_key, "retry", "", None, actor_id, enqueue)
