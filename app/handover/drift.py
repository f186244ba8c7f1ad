"""Drift checks: before a resumed deployment continues, re-verify every finished step, read-only.

`start(deployment_id, actor_id)` queues one verification run per done step that can be re-verified
(its own `drift_check`, or, for steps without one, a replay of its `advance` limited to read-only
phases: the detect scripts). Runs go through the normal execution service, one after the other
(options: mode=verify, batch, queue). Each run's verdict compares the checks with those of the run
that finished the step; at the end, steps that drifted need attention again and the deployment
pauses there, so nobody continues on top of a changed cluster.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from sqlalchemy import select

from app.events.publish import publish
from app.execution import service
from app.extensions import db
from app.guides import get_guide
from app.handover import notify
from app.models import Deployment, StepRun
from app.steps import Check, Finish, Phase, RunOptions, RunView, Step

MODE = "verify"


def _own_check(step: Step) -> bool:
    return type(step).drift_check is not Step.drift_check


def can_verify(step: Step) -> bool:
    """True when the step can be re-verified without changing anything."""
    return step.runnable and (_own_check(step) or step.replay_to_verify)


def _next_read_only(step: Step, view: RunView) -> Phase | None:
    if _own_check(step):
        return step.drift_check(view)
    decision = step.advance(view)
    return decision if isinstance(decision, Phase) and not decision.changes_state else None


def _as_when_finished(step: Step, view: RunView) -> RunView:
    """The view with the step's own secrets counted as entered.

    Secrets are never handed over: a take-over wipes the vault and the new driver enters only their
    WinRM account. A check that merely asks "was the license key entered?" would then fail on every
    resume although nothing changed on the cluster. A verification runs read-only phases, which
    use no step secret, so counting the step's secret fields as present only silences that false
    drift; a later run that needs the value still asks for it.
    """
    if not step.secret_fields:
        return view
    return dataclasses.replace(view, secret_names=view.secret_names | set(step.secret_fields))


def decide(step: Step, view: RunView) -> Phase | Finish:
    """The service's `advance` for a verification run: read-only phases, then a verdict."""
    view = _as_when_finished(step, view)
    phase = _next_read_only(step, view)
    if phase is not None and not phase.changes_state:
        return phase
    decision = phase if phase is not None else step.advance(view)
    if isinstance(decision, Phase):
        explain = getattr(step, "drift_explanation", None)
        check = explain(view) if explain is not None else None
        if check is not None:
            return Finish("needs_attention", f"Drift: {check.evidence}", (check,))
        check = Check(
            "drift.would_change",
            f"{step.title} would change the cluster again",
            "fail",
            f"Re-running the step would start '{decision.title}': what it did is no longer in place.",
            "Open the step and run it again, or find out who changed the nodes.",
        )
        return Finish("needs_attention", f"Drift: {decision.title} would run again.", (check,))
    return decision


def flagged_by_drift(deployment: Deployment) -> set[str]:
    """Steps waiting for a person only because a verification found drift (not their own run).

    They are verified again on the next resume: once the change is undone (the service set back to
    Manual, the node back in the gMSA's list) they are done again and the deployment goes on where
    it stopped, instead of making the new driver re-run a step that is in place.
    """
    waiting = {s.step_key for s in deployment.steps if s.status == "needs_attention"}
    if not waiting:
        return set()
    rows = db.session.execute(
        select(StepRun.step_key, StepRun.options)
        .where(StepRun.deployment_id == deployment.id, StepRun.step_key.in_(waiting))
        .order_by(StepRun.id)
    )
    latest = dict(rows.all())
    return {key for key, options in latest.items() if options.mode == MODE}


def steps_to_verify(deployment: Deployment) -> list[str]:
    """Done steps (and steps that drift stopped) that can be re-verified, in guide order."""
    guide = get_guide(deployment.guide_key)
    statuses = {s.step_key: s.status for s in deployment.steps}
    again = flagged_by_drift(deployment)
    return [
        s.key
        for s in guide.steps
        if (statuses.get(s.key) == "done" or s.key in again) and can_verify(s)
    ]


def start(
    deployment_id: int,
    actor_id: int | None,
    enqueue=None,
    credentials: tuple[str, str] | None = None,
) -> str | None:
    """Queue the verification of every finished step; returns the batch id (None if nothing).

    credentials: the (user name, password) the checks and the steps after them run with; stored
    first, under the deployment's lock (a finishing worker's order: deployment, then vault)."""
    if credentials is not None:
        service.lock_deployment(deployment_id, credentials=credentials, owner_id=actor_id)
        db.session.commit()
    deployment = db.session.get(Deployment, deployment_id)
    queue = steps_to_verify(deployment)
    if not queue:
        return None
    batch = uuid.uuid4().hex[:12]
    publish(
        deployment_id, "verification.started", {"batch": batch, "steps": queue}, actor_id=actor_id
    )
    options = RunOptions(
        mode=MODE, batch=batch, queue=tuple(queue[1:]), status_before=deployment.status
    )
    service.start_step_run(deployment_id, queue[0], actor_id, enqueue, options)
    return batch


def _baseline(run: StepRun) -> dict[str, Any]:
    """The outcome of the last ordinary run that finished the step."""
    previous = db.session.scalar(
        select(StepRun)
        .where(
            StepRun.deployment_id == run.deployment_id,
            StepRun.step_key == run.step_key,
            StepRun.status == "succeeded",
            StepRun.id != run.id,
        )
        .order_by(StepRun.attempt.desc())
        .limit(1)
    )
    return (previous.outcome or {}) if previous is not None else {}


def changes(before: dict, after: dict) -> list[dict]:
    """Checks whose verdict differs between two outcomes (keyed by check and node)."""
    old = {(c["key"], c.get("node")): c for c in before.get("checks") or []}
    out = []
    for check in after.get("checks") or []:
        was = old.get((check["key"], check.get("node")))
        if was is None and check["status"] in ("pass", "info"):
            continue
        if was is None or was["status"] != check["status"]:
            out.append(
                {
                    "check": check["title"],
                    "node": check.get("node"),
                    "before": was["status"] if was else None,
                    "after": check["status"],
                    "evidence": check.get("evidence", ""),
                    "remediation": check.get("remediation", ""),
                }
            )
    return out


def finish(run: StepRun, deployment: Deployment, verdict: Finish) -> str:
    """The service's `_finish` for a verification run; chains the next one or concludes the batch."""
    outcome = verdict.as_dict()
    diff = changes(_baseline(run), outcome)
    drifted = verdict.status != "done" or any(c["after"] in ("fail", "warn") for c in diff)
    if not service.end_run(run, "failed" if drifted else "succeeded"):
        return "already-finished"
    outcome["artifacts"] = {
        **outcome["artifacts"],
        "verification": {"drift": drifted, "changes": diff},
    }
    run.outcome = outcome
    deployment.step(run.step_key).status = "done"
    payload = {
        "batch": run.options.batch,
        "drift": drifted,
        "changes": diff[:50],
        "summary": verdict.summary,
    }
    publish(deployment.id, "step.verified", payload, step_key=run.step_key, step_run_id=run.id)
    queue = run.options.queue
    if queue:
        options = run.options.but(queue=queue[1:])
        service.start_step_run(deployment.id, queue[0], run.actor_id, None, options, fallback=False)
        return "verified"
    _conclude(deployment, run)
    return "verified"


def batch_runs(deployment_id: int, batch: str) -> list[StepRun]:
    """The verification runs of one batch, oldest first."""
    rows = db.session.scalars(
        select(StepRun).where(StepRun.deployment_id == deployment_id).order_by(StepRun.id)
    )
    return [r for r in rows if r.options.batch == batch]


def latest_batch(deployment_id: int) -> str | None:
    """The id of the newest verification batch of a deployment."""
    rows = db.session.scalars(
        select(StepRun).where(StepRun.deployment_id == deployment_id).order_by(StepRun.id.desc())
    )
    return next((r.options.batch for r in rows if r.options.mode == MODE), None)


def _conclude(deployment: Deployment, last: StepRun) -> None:
    """Drifted steps need attention again; the deployment continues at the first unfinished step."""
    runs = batch_runs(deployment.id, last.options.batch)
    drifted = [r.step_key for r in runs if r.status == "failed"]
    for key in drifted:
        deployment.step(key).status = "needs_attention"
    guide = get_guide(deployment.guide_key)
    statuses = {s.step_key: s.status for s in deployment.steps}
    first = next((s.key for s in guide.steps if statuses[s.key] not in ("done", "skipped")), None)
    deployment.current_step = first or guide.steps[-1].key
    waiting = any(v == "needs_attention" for v in statuses.values())
    before = last.options.status_before or "in_progress"
    deployment.status = "paused" if waiting else ("in_progress" if before == "paused" else before)
    payload = {"batch": last.options.batch, "drifted": drifted}
    publish(deployment.id, "verification.finished", payload, actor_id=last.actor_id)
    if drifted:
        reason = f"Drift found in {', '.join(drifted)} while resuming."
        publish(
            deployment.id, "step.paused", {"reason": reason, "drift": True}, step_key=drifted[0]
        )
        notify.on_paused(deployment.id, drifted[0], reason)


class VerifyMode:
    """The "verify" run mode (app.execution.machine.modes): finished steps checked again, read-only."""

    name = MODE
    decide = staticmethod(decide)
    finish = staticmethod(finish)
