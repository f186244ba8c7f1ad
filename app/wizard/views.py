"""One generic view serves every step of every guide."""

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from app.auth.decorators import requires
from app.events.publish import publish
from app.execution import service
from app.extensions import db
from app.models import Deployment
from app.wizard.context import guide_for
from app.wizard.fields import refusal
from app.wizard.forms import DecisionForm, RunForm, SimpleForm
from app.wizard.inputs import cross_check, save_inputs
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
    form = step.form_class(data=record.inputs or {}) if step.form_class else None
    if form is not None and request.method == "POST":
        form = step.form_class()
        if form.validate():
            errors = cross_check(step, deployment, form.data)
            for name, message in errors.items():
                form[name].errors = [*form[name].errors, message]
            if not errors:
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
    deployment, _, step = _load(deployment_id, step_key)
    form = RunForm()
    if not form.validate():
        flash(refusal(form) or "Enter the WinRM user name and password to run this step.", "error")
    else:
        # Kept with the run, or dropped with it when start_step_run refuses (an unfinished
        # earlier step, a run in progress...), so refused credentials are not kept.
        try:
            options = {"fix": form.fix.data} if form.fix.data else None
            service.start_step_run(
                deployment.id,
                step.key,
                current_user.id,
                options=options,
                credentials=(form.username.data, form.password.data),
            )
        except service.StepBlocked as error:
            flash(str(error), "error")
    return _to_step(deployment_id, step_key)


@bp.route("/steps/<step_key>/cancel", methods=["POST"])
@requires("drive")
def cancel(deployment_id: int, step_key: str):
    deployment, _, step = _load(deployment_id, step_key)
    if SimpleForm().validate() and (run := latest_run(deployment.id, step.key)):
        service.cancel(run.id, current_user.id)
        flash("Cancel requested: running scripts are being stopped.", "info")
    return _to_step(deployment.id, step.key)


@bp.route("/steps/<step_key>/decide", methods=["POST"])
@requires("drive")
def decide(deployment_id: int, step_key: str):
    deployment, _, step = _load(deployment_id, step_key)
    form = DecisionForm()
    if not form.validate():
        flash(refusal(form) or "Choose what to do next.", "error")
    elif (
        form.decision.data in {"skip", "exclude", "abort"} and not (form.reason.data or "").strip()
    ):
        flash("Give a reason: it is recorded with the deployment.", "error")
    else:
        try:
            service.resolve_pause(
                deployment.id,
                step.key,
                form.decision.data,
                form.reason.data.strip(),
                form.nodes.data,
                current_user.id,
            )
        except service.StepBlocked as error:
            flash(str(error), "error")
    return _to_step(deployment.id, step.key)


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
