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
from sqlalchemy import func, select, update

from app.events.publish import publish_many
from app.execution import vault
from app.execution.decisions import resolve_pause
from app.execution.dispatch import default_enqueue
from app.execution.finishing import mark_interrupted
from app.execution.phases import advance
from app.execution.state import ACTIVE_RUN, pending_count
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
        select(NodeAction).where(NodeAction.status == "running", NodeAction.heartbeat_at < cutoff)
    ).all()
    return [action.id for action in stale if _interrupt(action, cutoff)]


def _interrupt(action: NodeAction, cutoff) -> bool:
    """running -> interrupted if still stale, with its event; the run then pauses for a person."""
    worker = action.worker or "its worker"
    message = f"No heartbeat from {worker} since {action.heartbeat_at:%H:%M:%S} UTC."
    remediation = errors.REMEDIATION[errors.INTERRUPTED]
    done = db.session.execute(
        update(NodeAction)
        .where(
            NodeAction.id == action.id,
            NodeAction.status == "running",
            NodeAction.heartbeat_at < cutoff,
        )
        .values(
            status="interrupted",
            finished_at=utcnow(),
            error_category=errors.INTERRUPTED,
            error_message=message,
            remediation=remediation,
        )
    ).rowcount
    db.session.commit()
    if done != 1:
        return False
    run = db.session.get(StepRun, action.step_run_id)
    event = {
        "kind": "action.interrupted",
        "step_key": run.step_key,
        "node": action.node_name,
        "step_run_id": run.id,
        "node_action_id": action.id,
        "payload": {"message": message, "remediation": remediation},
    }
    publish_many(run.deployment_id, [event])
    mark_interrupted(run, f"A worker stopped while running {action.script} on {action.node_name}.")
    return True


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
        if pending_count(run.id) == 0 and (run.options or {}).get("waited") != run.phase:
            advance(run.id, enqueue)
            advanced.append(run.id)
    return advanced


def reap(enqueue=None) -> dict:
    """One sweep; returns what it did (logged by the task)."""
    result = {
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
