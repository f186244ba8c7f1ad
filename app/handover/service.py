"""Take-over and the needs-attention list: plain functions the views call."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import or_, select

from app.audit.service import record
from app.events.publish import publish
from app.execution import vault
from app.extensions import db
from app.guides import get_guide
from app.handover import lease
from app.models import Deployment, DeploymentStep, StepRun, User, utcnow

OPEN_STATUSES = ("draft", "in_progress", "paused")


def take_over(deployment: Deployment, user: User, reason: str) -> None:
    """Move the lease to `user`, wipe the previous driver's credentials, record it everywhere."""
    previous_id = lease.take(deployment.id, user.id)
    previous = db.session.get(User, previous_id) if previous_id else None
    vault.wipe(deployment.id, commit=False)
    payload = {
        "from": previous.username if previous else None,
        "from_id": previous_id,
        "to": user.username,
        "to_id": user.id,
        "reason": reason,
    }
    publish(deployment.id, "lease.taken_over", payload, actor_id=user.id)
    record("deployment.taken_over", f"deployment:{deployment.id}", payload)


def first_unfinished(deployment: Deployment) -> str:
    """The first step neither done nor skipped (the last step when all are)."""
    guide = get_guide(deployment.guide_key)
    statuses = {s.step_key: s.status for s in deployment.steps}
    for step in guide.steps:
        if statuses.get(step.key) not in ("done", "skipped"):
            return step.key
    return guide.steps[-1].key


def first_waiting(deployment: Deployment) -> str | None:
    """The first step, in guide order, that waits for a person."""
    guide = get_guide(deployment.guide_key)
    statuses = {s.step_key: s.status for s in deployment.steps}
    return next((s.key for s in guide.steps if statuses.get(s.key) == "needs_attention"), None)


@dataclass(frozen=True)
class Attention:
    """One deployment that needs a person, and why."""

    deployment: Deployment
    reason: str
    step_key: str
    driver: str | None


def _idle_cutoff() -> datetime:
    return utcnow() - timedelta(minutes=current_app.config["NEEDS_ATTENTION_IDLE_MINUTES"])


def _latest_run_status(deployment_ids: list[int]) -> dict[tuple[int, str], str]:
    """The newest run's status per (deployment, step); "drift" when a verification stopped it."""
    rows = db.session.execute(
        select(StepRun.deployment_id, StepRun.step_key, StepRun.status, StepRun.options)
        .where(StepRun.deployment_id.in_(deployment_ids))
        .order_by(StepRun.id)
    )
    return {
        (dep, key): "drift" if status == "failed" and options.mode == "verify" else status
        for dep, key, status, options in rows
    }


def _reason(dep: Deployment, runs: dict, cutoff: datetime) -> tuple[str, str]:
    waiting = first_waiting(dep)
    if waiting is not None:
        status = runs.get((dep.id, waiting))
        label = {
            "interrupted": "interrupted",
            "cancelled": "cancelled",
            "drift": "drift",
            "passed": "passed, next attempt to start",
        }.get(status, "failed")
        return label, waiting
    if dep.status == "paused":
        return "paused", dep.current_step
    idle = int((utcnow() - dep.last_activity_at).total_seconds() // 60)
    return f"idle for {idle} min", first_unfinished(dep) if dep.last_activity_at < cutoff else ""


def needs_attention(limit: int = 200) -> list[Attention]:
    """Open deployments that are paused, failed, interrupted or idle too long; oldest first."""
    cutoff = _idle_cutoff()
    waiting = select(DeploymentStep.deployment_id).where(DeploymentStep.status == "needs_attention")
    rows = db.session.scalars(
        select(Deployment)
        .where(
            Deployment.status.in_(OPEN_STATUSES),
            or_(
                Deployment.status == "paused",
                Deployment.last_activity_at < cutoff,
                Deployment.id.in_(waiting),
            ),
        )
        .order_by(Deployment.last_activity_at)
        .limit(limit)
    ).unique()
    deployments = list(rows)
    runs = _latest_run_status([d.id for d in deployments])
    drivers = lease.holders([d.id for d in deployments])
    out = []
    for dep in deployments:
        reason, step_key = _reason(dep, runs, cutoff)
        out.append(Attention(dep, reason, step_key or first_unfinished(dep), drivers.get(dep.id)))
    return out
