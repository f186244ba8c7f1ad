"""Ending a step run: its outcome, the step's and deployment's status, and the closing events.

A run ends only once: every ending is a compare-and-set on the run's still-active status.
"""

from __future__ import annotations

from typing import Any

from app.events.publish import publish_many
from app.execution import vault
from app.execution.machine import modes
from app.execution.machine.state import update_active_run
from app.execution.machine.transitions import ACTION, RUN_AFTER_FINISH, RUN_END, STEP_AFTER
from app.extensions import db
from app.guides import get_guide
from app.models import Deployment, NodeAction, StepRun, utcnow
from app.remote import errors
from app.steps import Finish

ENDED = ("completed", "aborted")  # deployment statuses whose credentials are wiped


def end_run(run: StepRun, status: str, outcome: Finish | None = None) -> bool:
    """Compare-and-set the run's final status; False when someone else already ended it.

    Nothing is rolled back either way: the caller's transaction may hold other work (an action's end)."""
    values: dict[str, Any] = {"finished_at": utcnow()}
    if outcome is not None:
        values["outcome"] = outcome.as_dict()
    return update_active_run(run, RUN_END[status], values)


def _next_step_key(deployment: Deployment, step_key: str) -> str:
    _, after = get_guide(deployment.guide_key).neighbours(step_key)
    return after.key if after is not None else step_key


def _all_runnable_finished(deployment: Deployment) -> bool:
    guide = get_guide(deployment.guide_key)
    statuses = {s.step_key: s.status for s in deployment.steps}
    return all(statuses.get(s.key) in ("done", "skipped") for s in guide.steps if s.runnable)


def _settle_report_steps(deployment: Deployment) -> None:
    """Steps with nothing to run (the Summary) are done exactly while the deployment is completed."""
    for step in get_guide(deployment.guide_key).steps:
        record = None if step.runnable else deployment.step(step.key)
        if record is not None:
            record.status = "done" if deployment.status == "completed" else "not_started"


def settle_deployment(deployment: Deployment, step_key: str, paused: bool) -> list[dict]:
    """Deployment status after a step ended; returns extra events to publish."""
    extra: list[dict] = []
    if paused:
        deployment.status = "paused"
    else:
        deployment.current_step = _next_step_key(deployment, step_key)
        if _all_runnable_finished(deployment):
            deployment.status = "completed"
            vault.wipe(deployment.id, commit=False)
            extra = [{"kind": "deployment.completed", "payload": {}}]
        else:
            deployment.status = "in_progress"
    _settle_report_steps(deployment)
    return extra


def finish(run: StepRun, deployment: Deployment, outcome: Finish) -> str:
    """Record the step's outcome with its events, in the caller's transaction, and commit."""
    if (mode := modes.of(run.options.mode)) is not None:
        return mode.finish(run, deployment, outcome)
    if not end_run(run, RUN_AFTER_FINISH.get(outcome.status, "failed"), outcome):
        return "already-finished"
    deployment.step(run.step_key).status = STEP_AFTER[run.status]
    extra = settle_deployment(deployment, run.step_key, paused=outcome.status != "done")
    if outcome.status == "done":
        step = get_guide(deployment.guide_key).step(run.step_key)
        vault.forget(deployment.id, step.wipe_on_success, commit=False)
    base = {"step_key": run.step_key, "step_run_id": run.id}
    items = [{**base, "kind": "step.finished", "payload": _payload(outcome)}]
    if outcome.status != "done":
        paused = {"reason": outcome.summary}
        if outcome.status == "passed":  # waiting for the next attempt, nothing went wrong
            paused["passed"] = True
        items.append({**base, "kind": "step.paused", "payload": paused})
    ended = deployment.status in ENDED  # read before the commit expires the row
    publish_many(deployment.id, items + [{**base, **e} for e in extra])
    if ended:
        modes.ended(deployment.id)  # e.g. the worker closes its sessions that used them
    if outcome.status == "needs_attention":  # a passed attempt's next one is the driver's own move
        modes.paused(deployment.id, run.step_key, outcome.summary)
    return outcome.status


def _payload(outcome: Finish) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for check in outcome.checks:
        counts[check.status] = counts.get(check.status, 0) + 1
    return {
        "status": outcome.status,
        "summary": outcome.summary,
        "checks": counts,
        "failed_nodes": list(outcome.failed_nodes),
    }


def finish_cancelled(run: StepRun) -> str:
    """End a cancelled run once its last action stopped; the step waits for a decision."""
    if not end_run(run, "cancelled", Finish("needs_attention", "Cancelled on request.")):
        return "already-finished"
    deployment = db.session.get(Deployment, run.deployment_id)
    deployment.step(run.step_key).status = STEP_AFTER[run.status]
    settle_deployment(deployment, run.step_key, paused=True)
    base = {"step_key": run.step_key, "step_run_id": run.id}
    publish_many(
        deployment.id,
        [
            {**base, "kind": "step.cancelled", "payload": {}},
            {**base, "kind": "step.paused", "payload": {"reason": "Cancelled on request."}},
        ],
    )
    return "cancelled"


def mark_interrupted(run: StepRun, reason: str) -> bool:
    """End a run as interrupted (reaper): the step needs a person, resume = retry."""
    if not end_run(run, "interrupted", Finish("needs_attention", reason)):
        return False
    deployment = db.session.get(Deployment, run.deployment_id)
    deployment.step(run.step_key).status = STEP_AFTER[run.status]
    settle_deployment(deployment, run.step_key, paused=True)
    db.session.execute(
        ACTION.update(
            "cancel",
            NodeAction.step_run_id == run.id,
            finished_at=utcnow(),
            error_category=errors.INTERRUPTED,
        )
    )
    base = {"step_key": run.step_key, "step_run_id": run.id}
    publish_many(
        deployment.id,
        [{**base, "kind": "step.paused", "payload": {"reason": reason, "interrupted": True}}],
    )
    modes.paused(deployment.id, run.step_key, reason)
    return True
