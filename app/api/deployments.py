"""API: create, list, read and export deployments (the same service functions as the screens)."""

from __future__ import annotations

from flask import url_for
from marshmallow import RAISE
from sqlalchemy import func, select

from app.api import present
from app.api.core import api_user, body_doc, bp, errors_doc, needs, read_json, unprocessable
from app.api.formjson import schema_for, validate_with_form
from app.api.schemas import DeploymentOut, DeploymentPage, ExportOut, HistoryArgs, PageArgs
from app.deployments.forms import DeploymentForm
from app.deployments.service import create_deployment, list_deployments
from app.extensions import db
from app.history.export import deployment_json
from app.models import Deployment

DEPLOYMENT_ID = "<int(max=2147483647):deployment_id>"


def load_deployment(deployment_id: int) -> Deployment:
    """The deployment or a JSON 404."""
    from flask_smorest import abort

    deployment = db.session.get(Deployment, deployment_id)
    if deployment is None:
        abort(404, message=f"No deployment {deployment_id}.")
    return deployment


@bp.get("/deployments")
@bp.arguments(PageArgs, location="query", unknown=RAISE)
@bp.response(200, DeploymentPage)
@errors_doc(401, 403, 422)
@bp.doc(tags=["deployments"], summary="List deployments, newest activity first")
@needs("view")
def list_all(args):
    rows, total = list_deployments(args["page"], args["per_page"])
    items = [present.summary_dict(d) for d in rows]
    return {"items": items, "total": total, "page": args["page"], "per_page": args["per_page"]}


@bp.post("/deployments")
@bp.doc(
    tags=["deployments"],
    summary="Create a deployment (validated like the New deployment form)",
    requestBody=body_doc(schema_for(DeploymentForm)),
)
@bp.response(201, DeploymentOut)
@errors_doc(400, 401, 403, 413, 415, 422)
@needs("create")
def create():
    form, errors = validate_with_form(DeploymentForm, read_json())
    if errors:
        unprocessable(errors)
    deployment = create_deployment(form.data, api_user(), form.guide_key.data)
    location = url_for("api.get_one", deployment_id=deployment.id)
    return present.deployment_dict(deployment), 201, {"Location": location}


@bp.get(f"/deployments/{DEPLOYMENT_ID}")
@bp.response(200, DeploymentOut)
@errors_doc(401, 403, 404)
@bp.doc(tags=["deployments"], summary="A deployment with its nodes and steps")
@needs("view")
def get_one(deployment_id: int):
    return present.deployment_dict(load_deployment(deployment_id))


@bp.get("/history")
@bp.arguments(HistoryArgs, location="query", unknown=RAISE)
@bp.response(200, DeploymentPage)
@errors_doc(401, 403, 422)
@bp.doc(tags=["history"], summary="Deployment history, optionally filtered by status")
@needs("view")
def history(args):
    query = select(Deployment)
    if args.get("status"):
        query = query.where(Deployment.status == args["status"])
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db.session.scalars(
        query.order_by(Deployment.last_activity_at.desc(), Deployment.id.desc())
        .limit(args["per_page"])
        .offset((args["page"] - 1) * args["per_page"])
    ).all()
    items = [present.summary_dict(d) for d in rows]
    return {"items": items, "total": total, "page": args["page"], "per_page": args["per_page"]}


@bp.get(f"/deployments/{DEPLOYMENT_ID}/export")
@bp.response(200, ExportOut)
@errors_doc(401, 403, 404)
@bp.doc(tags=["history"], summary="Everything recorded about a deployment, as one JSON document")
@needs("export")
def export(deployment_id: int):
    return deployment_json(load_deployment(deployment_id))
