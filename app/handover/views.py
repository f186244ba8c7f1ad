"""The needs-attention list, resuming (with drift checks), take-over, lease pings and notes."""

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user

from app.auth.decorators import may_drive, requires
from app.events.publish import publish
from app.execution import service
from app.extensions import db
from app.guides import get_guide
from app.handover import drift, lease
from app.handover.forms import NoteForm, TakeOverForm
from app.handover.service import first_unfinished, needs_attention, take_over
from app.models import Deployment
from app.wizard.fields import refusal
from app.wizard.forms import RunForm

bp = Blueprint("handover", __name__)
WATCH_ENDPOINTS = frozenset({"wizard.step", "handover.resume"})


@bp.before_app_request
def renew_on_view():
    """Opening a step page of a deployment you may drive takes or renews its lease if free."""
    args = request.view_args or {}
    if (
        request.method != "GET"
        or request.endpoint not in WATCH_ENDPOINTS
        or "deployment_id" not in args
    ):
        return
    if not current_user.is_authenticated or not current_user.can("drive"):
        return
    deployment = db.session.get(Deployment, args["deployment_id"])
    if deployment is not None and may_drive(current_user, deployment):
        lease.acquire(deployment.id, current_user.id)


@bp.app_context_processor
def lease_helpers():
    """`lease_for(deployment)` for templates: the lease as the viewer sees it."""

    def lease_for(deployment):
        state = lease.state(deployment.id, current_user)
        return {
            "state": state,
            "watching": state.held_by_other or not may_drive(current_user, deployment),
            "can_take_over": state.held_by_other and current_user.can("take_over"),
            "form": TakeOverForm(),
        }

    return {"lease_for": lease_for}


@bp.get("/attention")
@requires("view")
def attention():
    rows = needs_attention()
    return render_template("handover/attention.html", rows=rows)


@bp.route("/deployments/<int:deployment_id>/resume", methods=["GET", "POST"])
@requires("view", post="drive")
def resume(deployment_id: int):
    deployment = db.get_or_404(Deployment, deployment_id)
    form = RunForm()
    if request.method == "POST":
        if not form.validate():
            message = "Enter your own WinRM user name and password to verify and continue."
            flash(refusal(form) or message, "error")
        else:
            return _start_checks(deployment, (form.username.data, form.password.data))
    batch = drift.latest_batch(deployment.id)
    runs = drift.batch_runs(deployment.id, batch) if batch else []
    return render_template(
        "handover/resume.html",
        deployment=deployment,
        guide=get_guide(deployment.guide_key),
        form=form,
        runs=runs,
        to_verify=drift.steps_to_verify(deployment),
        next_step=first_unfinished(deployment),
        running=any(r.status in ("queued", "running") for r in runs),
    )


def _start_checks(deployment: Deployment, credentials: tuple[str, str]):
    try:
        batch = drift.start(deployment.id, current_user.id, credentials=credentials)
    except service.StepBlocked as error:
        flash(str(error), "error")
        return redirect(url_for("handover.resume", deployment_id=deployment.id))
    if batch is None:
        return redirect(
            url_for(
                "wizard.step", deployment_id=deployment.id, step_key=first_unfinished(deployment)
            )
        )
    flash("Re-verifying the finished steps before you continue.", "info")
    return redirect(url_for("handover.resume", deployment_id=deployment.id))


@bp.post("/deployments/<int:deployment_id>/take-over")
@requires("take_over")
def take(deployment_id: int):
    deployment = db.get_or_404(Deployment, deployment_id)
    form = TakeOverForm()
    if not form.validate():
        message = "Give a reason for taking over: it is recorded with the deployment."
        flash(refusal(form) or message, "error")
        return redirect(url_for("wizard.resume", deployment_id=deployment.id))
    take_over(deployment, current_user, form.reason.data.strip())
    flash("You are driving this deployment now. Enter your own WinRM credentials.", "success")
    return redirect(url_for("handover.resume", deployment_id=deployment.id))


@bp.post("/deployments/<int:deployment_id>/lease")
@requires("view")
def ping(deployment_id: int):
    """The driver's page pings every 30 s; returns who drives (JSON)."""
    deployment = db.get_or_404(Deployment, deployment_id)
    if may_drive(current_user, deployment):
        lease.acquire(deployment.id, current_user.id)
    state = lease.state(deployment.id, current_user)
    return jsonify(
        holder=state.holder_name,
        mine=state.mine,
        expires_at=state.expires_at.isoformat() if state.expires_at else None,
    )


@bp.post("/deployments/<int:deployment_id>/notes")
@requires("note")
def note(deployment_id: int):
    deployment = db.get_or_404(Deployment, deployment_id)
    form = NoteForm()
    if form.validate():
        keys = {s.step_key for s in deployment.steps}
        step_key = request.form.get("step_key") if request.form.get("step_key") in keys else None
        publish(
            deployment.id,
            "note.added",
            {"text": form.text.data.strip()},
            step_key=step_key,
            actor_id=current_user.id,
        )
        flash("Note added.", "success")
    else:
        flash(refusal(form) or "Write a note first.", "error")
    return redirect(url_for("history.detail", deployment_id=deployment.id))
