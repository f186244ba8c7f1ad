"""Read-side helpers that gather what a step page shows."""

from datetime import datetime

from flask import current_app
from sqlalchemy import select

from app.execution import health, vault
from app.extensions import db
from app.lab import demo
from app.models import Deployment, DeploymentStep, StepRun
from app.wizard.context import run_view, step_statuses
from app.wizard.engine import Guide, Step, blocking_step
from app.wizard.forms import DecisionForm, RunForm, SimpleForm


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
            "status": records[s.key].status if s.key in records else "not_started",
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
    return {
        "deployment": deployment,
        "guide": guide,
        "step": step,
        "record": deployment.step(step.key),
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
        "plan": step.preview(run_view(deployment, step.key, secrets)) if step.runnable else [],
        "run_form": RunForm(),
        "decision_form": DecisionForm(),
        "simple_form": SimpleForm(),
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
