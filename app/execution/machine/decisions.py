"""The operator's requests on a run: cancel it, or decide on a paused step (retry, skip, abort...)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select, update

from app.events.publish import publish, publish_many
from app.execution import vault
from app.execution.dispatch import Enqueue
from app.execution.machine.finishing import finish_cancelled, settle_deployment
from app.execution.machine.runs import start_step_run
from app.execution.machine.state import (
    StepBlocked,
    active_run,
    lock_deployment,
    pending_count,
)
from app.execution.machine.transitions import ACTION, RUN
from app.extensions import db
from app.guides import get_guide
from app.models import Deployment, DeploymentStep, NodeAction, StepRun, utcnow
from app.remote import errors
from app.steps import HA_MIN_NODES, RunOptions

DECISIONS = ("retry", "retry_failed", "skip", "abort", "exclude")


def cancel(run_id: int, actor_id: int | None = None, enqueue: Enqueue | None = None) -> str:
    """Ask a run to stop: queued actions are cancelled now, running ones are stopped by their heartbeat."""
    requested = db.session.execute(
        update(StepRun)
        .where(StepRun.id == run_id, RUN.where("cancel"))
        .values(cancel_requested=True)
    ).rowcount
    if requested != 1:
        db.session.rollback()
        return "inactive"
    db.session.execute(
        ACTION.update(
            "cancel",
            NodeAction.step_run_id == run_id,
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
    return finish_cancelled(run) if pending_count(run_id) == 0 else "cancelling"


def _failed_nodes(run: StepRun) -> list[str]:
    failed = list((run.outcome or {}).get("failed_nodes") or [])
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


def _blocked(message: str) -> StepBlocked:
    """Roll back the request's changes and return the error to raise."""
    db.session.rollback()
    return StepBlocked(message)


def resolve_pause(
    deployment_id: int,
    step_key: str,
    decision: str,
    reason: str | None,
    nodes: list[str] | None,
    actor_id: int | None,
    enqueue: Enqueue | None = None,
    *,
    credentials: tuple[str, str] | None = None,
    fix: str | None = None,
    prepare: Callable[[Deployment], None] | None = None,
) -> StepRun | None:
    """Apply the operator's decision on a paused step: retry, retry_failed, skip, abort or exclude.

    credentials: (user name, password) for the next attempt, stored under the deployment's lock
    (a finishing worker's order: deployment, then vault) only when the decision starts one; a
    refused decision keeps none, and credentials a node just refused are refused again
    (accept_credentials). Without credentials the stored ones are used, unless a node refused them.
    fix: the id of an offered fix to apply before the checks run again (a retry).
    prepare: called with the locked deployment when the decision starts an attempt, in its
    transaction (the wizard saves the step's inputs there)."""
    reason = (reason or "").strip()
    if decision not in DECISIONS:
        raise StepBlocked(f"Unknown decision {decision!r}.")
    deployment = lock_deployment(deployment_id)
    record = deployment.step(step_key)
    if record is None:
        raise _blocked(f"Unknown step {step_key!r}.")
    if decision == "abort":
        return _abort(deployment, step_key, reason, actor_id)
    if record.status != "needs_attention":
        raise _blocked("This step is not waiting for a decision.")
    last = _latest_run(deployment_id, step_key)
    if decision == "skip":
        return _skip(deployment, record, reason, actor_id)
    options = RunOptions(decision=decision, retry_of=last.id if last else None, fix=fix or None)
    if decision == "retry_failed":
        options = options.but(nodes=_retry_failed_nodes(deployment, step_key, last))
    if decision == "exclude":
        _exclude(deployment, step_key, nodes or [], reason, actor_id)

    def ready(locked: Deployment) -> None:  # under start_step_run's lock, before its checks
        accept_credentials(locked, credentials, actor_id)
        if prepare is not None:
            prepare(locked)

    return start_step_run(deployment_id, step_key, actor_id, enqueue, options, prepare=ready)


def accept_credentials(
    deployment: Deployment, credentials: tuple[str, str] | None, actor_id: int | None
) -> None:
    """Store the credentials typed for the next attempt (caller holds the deployment's lock), unless
    they are the ones a node just refused: a retry with them would fail again and, against
    Active Directory, count towards locking the account. Without credentials nothing is stored
    and the run's own check refuses stored credentials that a node refused."""
    if credentials is None:
        return
    username, password = credentials
    if vault.refused(deployment.id, username, password):
        raise _blocked(
            f"These are the credentials of {username} that a node just refused. Check the user "
            "name and password (and that the account is not locked), then enter them again; if "
            "they are right and the node's side is fixed, sign in once with Test connections."
        )
    vault.store_credentials(deployment.id, username, password, owner_id=actor_id, commit=False)


def _retry_failed_nodes(deployment: Deployment, step_key: str, last: StepRun | None) -> list[str]:
    step = get_guide(deployment.guide_key).step(step_key)
    if not step.per_node_retry:
        raise _blocked(f"'{step.title}' must run on every node together; choose Retry.")
    active = {x.name for x in deployment.active_nodes}
    failed = [n for n in (_failed_nodes(last) if last else []) if n in active]
    if not failed:
        raise _blocked("No node failed in the last attempt; choose Retry.")
    return failed


def _skip(
    deployment: Deployment, record: DeploymentStep, reason: str, actor_id: int | None
) -> None:
    if not reason:
        raise _blocked("Give a reason to skip: it is recorded with the deployment.")
    record.status = "skipped"
    record.skip_reason = reason
    record.updated_by_id = actor_id
    extra = settle_deployment(deployment, record.step_key, paused=False)
    skipped = {
        "kind": "step.skipped",
        "payload": {"reason": reason},
        "step_key": record.step_key,
        "actor_id": actor_id,
    }
    publish_many(deployment.id, [skipped] + [{**e, "actor_id": actor_id} for e in extra])


def _abort(deployment: Deployment, step_key: str, reason: str, actor_id: int | None) -> None:
    if not reason:
        raise _blocked("Give a reason to abort: it is recorded with the deployment.")
    active = active_run(deployment.id)
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


def exclusion_refusal(deployment: Deployment, chosen: list) -> str | None:
    """Why excluding `chosen` is refused: a cluster needs two nodes for the role to fail over and
    for the failover test to mean anything. None when it is allowed."""
    left = [n.name for n in deployment.active_nodes if n not in chosen]
    if len(left) >= HA_MIN_NODES:
        return None
    names = ", ".join(n.name for n in chosen)
    kept = f"only {left[0]}" if len(left) == 1 else "no node"
    return (
        f"Excluding {names} would leave {kept} in this deployment: the role needs at least "
        f"{HA_MIN_NODES} nodes to fail over, and the failover test would prove nothing. Fix the "
        "node and choose Retry, or abort and start a new deployment with other nodes."
    )


def _exclude(
    deployment: Deployment, step_key: str, names: list[str], reason: str, actor_id: int | None
) -> None:
    if not reason or not names:
        raise _blocked("Choose the nodes to exclude and give a reason.")
    chosen = [n for n in deployment.active_nodes if n.name in set(names)]
    if not chosen:
        raise _blocked("Choose at least one node of this deployment to exclude.")
    if (refusal := exclusion_refusal(deployment, chosen)) is not None:
        raise _blocked(refusal)
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
