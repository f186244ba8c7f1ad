"""One generic view serves every step of every guide."""

import functools

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm

from app.auth.decorators import requires
from app.context import guide_for, step_statuses
from app.deployments.service import node_addresses
from app.events.publish import publish
from app.execution import service, vault
from app.extensions import db
from app.history.records import shown_inputs
from app.models import Deployment
from app.steps import RunOptions, Step, blocked_message, blocking_step
from app.wizard.fields import refusal
from app.wizard.forms import DecisionForm, SimpleForm, StepRunForm
from app.wizard.inputs import save_inputs
from app.wizard.runs import latest_run, step_page_context

bp = Blueprint("wizard", __name__, url_prefix="/deployments/<int:deployment_id>")


def _load(deployment_id: int, step_key: str | None = None):
    deployment = db.get_or_404(Deployment, deployment_id)
    guide = guide_for(deployment)
    try:
        step = guide.step(step_key or deployment.current_step)
    except KeyError:
        abort(404)
    return deployment, guide, step


def _to_step(deployment_id: int, step_key: str):
    return redirect(url_for("wizard.step", deployment_id=deployment_id, step_key=step_key))


@bp.route("/")
@requires("view")
def resume(deployment_id: int):
    deployment, _, step = _load(deployment_id)
    return _to_step(deployment.id, step.key)


@bp.route("/steps/<step_key>", methods=["GET", "POST"])
@requires("view", post="drive")
def step(deployment_id: int, step_key: str):
    deployment, guide, step = _load(deployment_id, step_key)
    record = deployment.step(step.key)
    # The saved inputs as every page shows them: a password in an old row's text stays masked.
    shown = shown_inputs(record.inputs, step.secret_fields)
    form = step.form_class(data=shown) if step.form_class else None
    if form is not None and request.method == "POST":
        form, valid = _posted_inputs(step, deployment)
        if valid:
            save_inputs(step, deployment, form.data, current_user)
            flash(f"{step.title}: inputs saved.", "success")
            return _to_step(deployment.id, step.key)
        flash("Some values need attention; nothing was saved.", "error")
    ctx = step_page_context(deployment, guide, step)
    return render_template(
        "wizard/step.html", form=form, **ctx
    ), 400 if form and form.errors else 200


@bp.route("/steps/<step_key>/run", methods=["POST"])
@requires("drive")
def run(deployment_id: int, step_key: str):
    """Start the step with what is on the screen: its inputs are validated and saved, and the
    credentials stored, in the run's own transaction; if anything is refused nothing is kept."""
    deployment, guide, step = _load(deployment_id, step_key)
    form, inputs_ok = _posted_inputs(step, deployment)
    run_form = StepRunForm()
    valid = run_form.validate()
    # The stored credentials are looked up only if the fields are empty (typed ones are used).
    chosen, credentials = run_form.chosen_credentials(functools.partial(vault.held, deployment.id))
    if not (inputs_ok and valid and chosen):
        if (blocker := blocking_step(guide, step.key, step_statuses(deployment))) is not None:
            # Said instead of any field's message (the page offers no Run then). A run that
            # passes every field is refused the same way under the run's lock (StepBlocked).
            flash(blocked_message(blocker, step), "error")
            fresh = step.form_class() if step.form_class else None
            return _page(deployment, guide, step, fresh, 409, run_form=StepRunForm())
        flash(_problem(form, run_form, inputs_ok), "error")
        return _page(deployment, guide, step, form, 400, run_form=run_form)
    keep = functools.partial(_keep, step, form, credentials)
    try:
        service.start_step_run(
            deployment.id,
            step.key,
            current_user.id,
            options=RunOptions(fix=run_form.fix.data or None),
            prepare=keep,
        )
    except service.StepBlocked as error:
        flash(f"{error} Nothing was saved.", "error")
        return _page(deployment, guide, step, form, 409, run_form=run_form)
    return _to_step(deployment_id, step_key)


def _posted_inputs(step: Step, deployment: Deployment) -> tuple[FlaskForm | None, bool]:
    """The step's inputs form as posted with the run, checked like Save inputs: (form, valid)."""
    if step.form_class is None:
        return None, True
    form = step.form_class()
    if not form.validate():
        return form, False
    errors = step.cross_check(deployment, form.data, lambda: node_addresses(deployment))
    for name, message in errors.items():
        form[name].errors = [*form[name].errors, message]
    return form, not errors


def _keep(step: Step, form, credentials, deployment: Deployment) -> None:
    """Under the run's lock, in its transaction: the credentials (unless a node just refused
    them) and the step's inputs."""
    service.accept_credentials(deployment, credentials, current_user.id)
    if form is not None:
        save_inputs(step, deployment, form.data, current_user, commit=False)


def _problem(inputs, credentials, inputs_ok: bool) -> str:
    """The flash for a refused run or decision: a refused character first, then what the
    credentials lack when the inputs are fine, else the general note."""
    for form in (inputs, credentials):
        if form is not None and (message := refusal(form)):
            return message
    missing = credentials.username.errors or credentials.password.errors
    if inputs_ok and missing:
        return f"{missing[-1]} Nothing was saved and nothing ran."
    return "Some values need attention; nothing was saved and nothing ran."


def _page(deployment, guide, step, form, status: int, **forms):
    """The step page again, with what was typed (secrets excepted) and each field's message."""
    ctx = step_page_context(deployment, guide, step)
    ctx.update(forms)
    return render_template("wizard/step.html", form=form, **ctx), status


@bp.route("/steps/<step_key>/cancel", methods=["POST"])
@requires("drive")
def cancel(deployment_id: int, step_key: str):
    deployment, _, step = _load(deployment_id, step_key)
    if SimpleForm().validate() and (run := latest_run(deployment.id, step.key)):
        service.cancel(run.id, current_user.id)
        flash("Cancel requested: running scripts are being stopped.", "info")
    return _to_step(deployment.id, step.key)


STARTS_ATTEMPT = frozenset({"retry", "retry_failed", "exclude"})


@bp.route("/steps/<step_key>/decide", methods=["POST"])
@requires("drive")
def decide(deployment_id: int, step_key: str):
    """Continue after a pause. A decision that starts an attempt (Retry...) runs with what is on
    the screen, as Run does: inputs and credentials checked and kept with it, or nothing kept."""
    deployment, guide, step = _load(deployment_id, step_key)
    form = DecisionForm()
    valid = form.validate()
    decision = form.decision.data if valid else None
    starts = decision in STARTS_ATTEMPT
    if starts:
        inputs, inputs_ok = _posted_inputs(step, deployment)
    else:  # shown again as typed if the page comes back, never saved
        inputs, inputs_ok = (step.form_class() if step.form_class else None), True
    chosen, credentials = (
        form.chosen_credentials(functools.partial(vault.held, deployment.id))
        if starts
        else (True, None)
    )
    if not valid:
        flash(refusal(form) or "Choose how to continue.", "error")
        return _page(deployment, guide, step, inputs, 400, decision_form=form)
    if decision in {"skip", "exclude", "abort"} and not (form.reason.data or "").strip():
        form.reason.errors = [*form.reason.errors, "Give a reason: it is recorded."]
        flash("Give a reason: it is recorded with the deployment.", "error")
        return _page(deployment, guide, step, inputs, 400, decision_form=form)
    if not (inputs_ok and chosen):
        flash(_problem(inputs, form, inputs_ok), "error")
        return _page(deployment, guide, step, inputs, 400, decision_form=form)
    keep = functools.partial(_keep_inputs, step, inputs) if starts and inputs else None
    try:
        service.resolve_pause(
            deployment.id,
            step.key,
            decision,
            (form.reason.data or "").strip(),
            form.nodes.data,
            current_user.id,
            credentials=credentials,
            fix=(form.fix.data or None) if decision != "exclude" else None,
            prepare=keep,
        )
    except service.StepBlocked as error:
        flash(f"{error} Nothing was saved." if starts else str(error), "error")
        return _page(deployment, guide, step, inputs, 409, decision_form=form)
    return _to_step(deployment.id, step.key)


def _keep_inputs(step: Step, form, deployment: Deployment) -> None:
    save_inputs(step, deployment, form.data, current_user, commit=False)


@bp.route("/steps/<step_key>/note", methods=["POST"])
@requires("note")
def note(deployment_id: int, step_key: str):
    deployment, _, step = _load(deployment_id, step_key)
    form = SimpleForm()
    text = (form.reason.data or "").strip() if form.validate() else ""
    if refusal(form):
        flash(refusal(form), "error")
    elif text:
        publish(
            deployment.id,
            "note.added",
            {"text": text[:2000]},
            step_key=step.key,
            actor_id=current_user.id,
        )
        flash("Note added.", "success")
    return _to_step(deployment.id, step.key)
