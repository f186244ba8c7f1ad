"""Deployment list, creation and editing."""

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from app import validators
from app.auth.decorators import requires
from app.deployments.forms import MAX_NODES, ConnectionTestForm, DeploymentPageForm
from app.deployments.service import (
    create_deployment,
    finished_refusal,
    list_deployments,
    nodes_locked,
    update_deployment,
)
from app.execution import probe, vault
from app.extensions import db
from app.guides import GUIDES, get_guide
from app.lab import demo
from app.models import Deployment

bp = Blueprint("deployments", __name__)


def _grow(form: DeploymentPageForm) -> bool:
    """Handle the 'add node' / 'remove node' buttons; True when the form must be shown again."""
    if "add_node" in request.form and len(form.nodes) < MAX_NODES:
        form.nodes.append_entry()
        return True
    if "remove_node" in request.form and len(form.nodes) > 2:
        form.nodes.pop_entry()
        return True
    return False


@bp.route("/")
@requires("view")
def index():
    page = validators.page_number(request.args.get("page", type=int))
    rows, total = list_deployments(page)
    return render_template("deployments/index.html", rows=rows, total=total, page=page)


@bp.route("/deployments/new", methods=["GET", "POST"])
@requires("create")
def create():
    lab = demo.lab_state(current_app.config["INSTANCE_DIR"]) if _lab_offered() else None
    use_lab = lab is not None and request.values.get("from_lab") == "1"
    prefill = demo.deployment_values(lab, current_app.config["LAB_BASE_PORT"]) if use_lab else None
    form = DeploymentPageForm(data=prefill) if request.method == "GET" else DeploymentPageForm()
    if not _grow(form) and form.validate_on_submit():
        guide = get_guide(form.guide_key.data)
        inputs = demo.step_inputs(lab, guide) if use_lab else None
        deployment = create_deployment(form.data, current_user, guide.key, step_inputs=inputs)
        flash(f"Deployment {deployment.name} created.", "success")
        return redirect(url_for("wizard.resume", deployment_id=deployment.id))
    return render_template(
        "deployments/form.html",
        form=form,
        deployment=None,
        lab=lab,
        from_lab=use_lab,
        guide_choices={g.key: g.choice for g in GUIDES.values()},
    )


def _lab_offered() -> bool:
    return bool(current_app.config.get("LAB_ENABLED"))


@bp.route("/deployments/<int:deployment_id>/edit", methods=["GET", "POST"])
@requires("drive")
def edit(deployment_id: int):
    deployment = db.get_or_404(Deployment, deployment_id)
    if finished := finished_refusal(deployment):  # not offered, and refused when asked for
        page = render_template("deployments/finished.html", deployment=deployment, why=finished)
        return page, 409
    locked = nodes_locked(deployment)
    form = DeploymentPageForm(obj=deployment)
    if locked and request.method == "POST":
        flash(locked, "error")
    elif not _grow(form) and form.validate_on_submit():
        update_deployment(deployment, form.data, current_user)
        flash("Deployment saved.", "success")
        return redirect(url_for("wizard.resume", deployment_id=deployment.id))
    return render_template(
        "deployments/form.html",
        form=form,
        deployment=deployment,
        locked=locked,
        guide_title=get_guide(deployment.guide_key).title,
        ca_certificates=validators.ca_bundle_summary(deployment.ca_bundle),
    )


@bp.route("/deployments/<int:deployment_id>/connections", methods=["GET", "POST"])
@requires("drive")
def connections(deployment_id: int):
    """Test connection, per node: sign in with the typed credentials and run the probe."""
    deployment = db.get_or_404(Deployment, deployment_id)
    form = ConnectionTestForm()
    form.node.choices = [(n.id, n.name) for n in deployment.nodes]
    if form.validate_on_submit():
        node = next(n for n in deployment.nodes if n.id == form.node.data)
        probe.request(deployment, node, form.username.data, form.password.data, current_user.id)
        flash(f"Testing the connection to {node.name}: the result appears below.", "success")
        return redirect(url_for("deployments.connections", deployment_id=deployment.id))
    if request.method == "GET" and not form.username.data:
        form.username.data = vault.username(deployment.id) or ""
    results = probe.latest(deployment.id)
    return render_template(
        "deployments/connections.html",
        deployment=deployment,
        form=form,
        results=results,
        pending=any(r["pending"] for r in results.values()),
    )
