"""API: a step's inputs, plan, run, cancel and pause decisions, and the deployment's status."""

from __future__ import annotations

from flask_smorest import abort
from werkzeug.routing import BaseConverter

from app.api import present
from app.api.core import api_user, body_doc, bp, errors_doc, needs, read_json, unprocessable
from app.api.deployments import DEPLOYMENT_ID, load_deployment
from app.api.formjson import flatten_errors, schema_for, validate_with_form
from app.api.schemas import DecisionIn, DecisionOut, PlanOut, RunIn, RunOut, StatusOut, StepOut
from app.context import guide_for
from app.deployments.service import node_addresses
from app.execution import service
from app.guides import GUIDES
from app.models import Deployment
from app.runbook.views import runbook_response
from app.steps import RunOptions, Step
from app.wizard.inputs import save_inputs
from app.wizard.runs import latest_run


class StepKeyConverter(BaseConverter):
    """A step key in a URL (the guide decides whether it exists)."""

    regex = r"[a-z][a-z0-9_]{0,63}"


def step_key_schema(_converter) -> dict:
    """OpenAPI schema of the step key: the keys of the built-in guides."""
    keys = sorted({s.key for g in GUIDES.values() for s in g.steps})
    return {"type": "string", "enum": keys}


STEP = f"/deployments/{DEPLOYMENT_ID}/steps/<step_key:step_key>"


def load_step(deployment_id: int, step_key: str) -> tuple[Deployment, Step]:
    deployment = load_deployment(deployment_id)
    try:
        return deployment, guide_for(deployment).step(step_key)
    except KeyError:
        abort(404, message=f"The deployment's guide has no step {step_key!r}.")


def _inputs_doc() -> dict:
    forms = {s.form_class for g in GUIDES.values() for s in g.steps if s.form_class}
    return body_doc(
        {"anyOf": [schema_for(f) for f in sorted(forms, key=lambda f: f.__name__)]},
        "The step's form fields (see the step's schema); secret fields go to the vault.",
    )


@bp.put(f"{STEP}/inputs")
@bp.doc(
    tags=["steps"],
    summary="Save a step's inputs (validated like the step's form, all or nothing)",
    requestBody=_inputs_doc(),
)
@bp.response(200, StepOut)
@errors_doc(400, 401, 403, 404, 409, 413, 415, 422)
@needs("drive")
def put_inputs(deployment_id: int, step_key: str):
    deployment, step = load_step(deployment_id, step_key)
    if step.form_class is None:
        abort(409, message=f"'{step.title}' has no inputs.")
    form, errors = validate_with_form(step.form_class, read_json())
    if not errors:
        problems = step.cross_check(deployment, form.data, lambda: node_addresses(deployment))
        errors = flatten_errors(problems)
    if errors:
        unprocessable(errors)
    save_inputs(step, deployment, form.data, api_user())
    return present.step_dict(step, deployment.step(step.key), deployment)


@bp.get(f"{STEP}/plan")
@bp.response(200, PlanOut)
@errors_doc(401, 403, 404)
@bp.doc(tags=["steps"], summary="The plan preview: every phase and action, secrets masked")
@needs("view")
def plan(deployment_id: int, step_key: str):
    deployment, step = load_step(deployment_id, step_key)
    return present.plan_dict(deployment, step)


@bp.post(f"{STEP}/run")
@bp.doc(
    tags=["steps"],
    summary="Run the step with WinRM credentials (held encrypted while work is pending)",
    requestBody=body_doc(RunIn),
)
@bp.response(202, RunOut)
@errors_doc(400, 401, 403, 404, 409, 413, 415, 422)
@needs("drive")
def run(deployment_id: int, step_key: str):
    deployment, step = load_step(deployment_id, step_key)
    creds = _load(RunIn, read_json())
    user = api_user()
    credentials = (creds["username"], creds["password"])

    def keep(locked: Deployment) -> None:  # refused again if a node just refused them
        service.accept_credentials(locked, credentials, user.id)

    try:
        started = service.start_step_run(
            deployment.id,
            step.key,
            user.id,
            options=RunOptions(fix=creds.get("fix") or None),
            prepare=keep,
        )
    except service.StepBlocked as error:
        abort(409, message=str(error))
    return present.run_dict(started)


@bp.post(f"{STEP}/cancel")
@bp.response(202, RunOut)
@errors_doc(401, 403, 404, 409)
@bp.doc(tags=["steps"], summary="Ask the step's active run to stop")
@needs("drive")
def cancel(deployment_id: int, step_key: str):
    deployment, step = load_step(deployment_id, step_key)
    current = latest_run(deployment.id, step.key)
    if current is None or service.cancel(current.id, api_user().id) == "inactive":
        abort(409, message="This step has no active run.")
    return present.run_dict(current)


@bp.post(f"{STEP}/decision")
@bp.doc(
    tags=["steps"],
    summary="Answer a paused step: retry, retry_failed, skip, exclude (nodes) or abort",
    requestBody=body_doc(DecisionIn),
)
@bp.response(202, DecisionOut)
@errors_doc(400, 401, 403, 404, 409, 413, 415, 422)
@needs("drive")
def decide(deployment_id: int, step_key: str):
    deployment, step = load_step(deployment_id, step_key)
    answer = _load(DecisionIn, read_json())
    if answer["decision"] in {"skip", "exclude", "abort"} and not answer["reason"].strip():
        unprocessable({"reason": ["Give a reason: it is recorded with the deployment."]})
    user = api_user()
    credentials = (answer["username"], answer["password"]) if "username" in answer else None
    try:
        started = service.resolve_pause(
            deployment.id,
            step.key,
            answer["decision"],
            answer["reason"],
            answer["nodes"],
            user.id,
            credentials=credentials,
            fix=answer.get("fix"),
        )
    except service.StepBlocked as error:
        abort(409, message=str(error))
    deployment = load_deployment(deployment_id)
    return {
        "decision": answer["decision"],
        "step_status": deployment.step(step.key).status,
        "deployment_status": deployment.status,
        "run": present.run_dict(started) if started is not None else None,
    }


@bp.get(f"/deployments/{DEPLOYMENT_ID}/status")
@bp.response(200, StatusOut)
@errors_doc(401, 403, 404)
@bp.doc(tags=["steps"], summary="Steps, runs and node actions as the database records them")
@needs("view")
def status(deployment_id: int):
    return present.status_dict(load_deployment(deployment_id))


def _load(schema_class, body: dict) -> dict:
    import marshmallow as ma

    try:
        return schema_class().load(body)
    except ma.ValidationError as error:
        unprocessable(flatten_errors(error.messages))


RUNBOOK_DOC = {
    "200": {
        "description": "A standalone PowerShell runbook (UTF-8 with BOM)",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
}


@bp.get(f"/deployments/{DEPLOYMENT_ID}/runbook.ps1")
@errors_doc(401, 403, 404, 409)
@bp.doc(
    tags=["runbook"], summary="The whole deployment as a PowerShell runbook", responses=RUNBOOK_DOC
)
@needs("export")
def deployment_runbook(deployment_id: int):

    return runbook_response(load_deployment(deployment_id))


@bp.get(f"{STEP}/runbook.ps1")
@errors_doc(401, 403, 404, 409)
@bp.doc(tags=["runbook"], summary="One step's plan as a PowerShell runbook", responses=RUNBOOK_DOC)
@needs("export")
def step_runbook(deployment_id: int, step_key: str):

    deployment, step = load_step(deployment_id, step_key)
    return runbook_response(deployment, step.key)
