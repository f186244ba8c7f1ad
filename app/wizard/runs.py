"""Read-side helpers that gather what a step page shows."""

from datetime import datetime

from flask import current_app
from sqlalchemy import select

from app.context import run_view, shown_status, step_statuses
from app.execution import health, vault
from app.extensions import db
from app.history.timeline import deployment_page
from app.lab import demo
from app.models import Deployment, DeploymentStep, StepRun
from app.steps import HA_MIN_NODES, Guide, Phase, Step, blocking_step
from app.wizard.forms import DecisionForm, SimpleForm, StepRunForm


def latest_run(deployment_id: int, step_key: str) -> StepRun | None:
    """The newest attempt at a step."""
    return db.session.scalar(
        select(StepRun)
        .where(StepRun.deployment_id == deployment_id, StepRun.step_key == step_key)
        .order_by(StepRun.attempt.desc())
        .limit(1)
    )


def runs_for(deployment_id: int, step_key: str) -> list[StepRun]:
    """Every attempt at a step, newest first."""
    return list(
        db.session.scalars(
            select(StepRun)
            .where(StepRun.deployment_id == deployment_id, StepRun.step_key == step_key)
            .order_by(StepRun.attempt.desc())
        )
    )


def sidebar(guide: Guide, deployment: Deployment) -> list[dict]:
    """Each step with its status and skip reason, in guide order."""
    records = {s.step_key: s for s in deployment.steps}
    return [
        {
            "key": s.key,
            "title": s.title,
            "number": i + 1,
            "status": shown_status(
                s, records[s.key].status if s.key in records else None, deployment.status
            ),
            "skip_reason": records[s.key].skip_reason if s.key in records else None,
        }
        for i, s in enumerate(guide.steps)
    ]


def step_page_context(deployment: Deployment, guide: Guide, step: Step) -> dict:
    """Everything the generic step template renders."""
    before, after = guide.neighbours(step.key)
    runs = runs_for(deployment.id, step.key)
    if runs:
        # The deployment and its steps were read before the runs, each read seeing the latest
        # commit: a run that ended in between would show as ended beside a step still "in
        # progress" (and the page would not reload, the run looking final). Read them again.
        db.session.refresh(deployment, ["status", "current_step"])
        db.session.scalars(
            select(DeploymentStep)
            .where(DeploymentStep.deployment_id == deployment.id)
            .execution_options(populate_existing=True)
        ).all()
    secrets = vault.secret_names(deployment.id)
    statuses = step_statuses(deployment)
    held = vault.held(deployment.id)
    record = deployment.step(step.key)
    plan = step.preview(run_view(deployment, step.key, secrets)) if step.runnable else []
    return {
        "deployment": deployment,
        "guide": guide,
        "step": step,
        "record": record,
        "input_warnings": step.input_warnings(deployment, record.inputs or {}),
        "number": guide.index(step.key) + 1,
        "sidebar": sidebar(guide, deployment),
        "before": before,
        "after": after,
        "runs": runs,
        "run": runs[0] if runs else None,
        "service_notices": health.notices(_active_since(runs[0] if runs else None)),
        "blocker": blocking_step(guide, step.key, statuses),
        "stored_secrets": secrets,
        "lab_hint": _lab_hint(deployment, step.key),
        "plan": plan,
        "phase_count": phase_count(runs[0] if runs else None, plan),
        "held": held,
        "held_refused": vault.refusal(deployment.id) if held and not held.usable else None,
        "run_form": StepRunForm(),
        "decision_form": DecisionForm(),
        # Exclusion is offered only where it leaves the two nodes high availability needs.
        "can_exclude": step.per_node_retry and len(deployment.active_nodes) > HA_MIN_NODES,
        # The Summary step shows the deliverable the history, report and export show.
        "deliverable": None if step.runnable else deployment_page(deployment)["summary"],
        "simple_form": SimpleForm(),
    }


def phase_count(run: StepRun | None, plan: list[Phase]) -> dict | None:
    """Where an active run is: {"number", "total", "title", "names"} for "Phase 2 of 4: ...".

    The phases are the ones its actions belong to, in the order they started; the total is the
    plan's (every phase the step may run), never less than the number reached."""
    if run is None or run.status not in ("queued", "running") or not run.phase:
        return None
    names: list[str] = []
    for action in sorted(run.actions, key=lambda a: a.id or 0):
        if action.phase not in names:
            names.append(action.phase)
    if run.phase not in names:
        names.append(run.phase)
    number = names.index(run.phase) + 1
    titles = {p.name: p.title for p in plan}
    return {
        "number": number,
        "total": max(len(plan), len(names)),
        "title": titles.get(run.phase, run.phase),
        "names": names,
    }


def _active_since(run) -> datetime | None:
    """When the shown run started, if it is still queued or running."""
    if run is None or run.status not in ("queued", "running"):
        return None
    return run.started_at or run.created_at


def _lab_hint(deployment: Deployment, step_key: str) -> str | None:
    """How to play the operator's manual part of this step against the demo lab, if it runs here."""
    config = current_app.config
    if not config.get("LAB_ENABLED"):
        return None
    return demo.operator_hint(
        config["INSTANCE_DIR"], config["LAB_BASE_PORT"], deployment.nodes, step_key
    )
