"""Download a deployment's (or one step's) plan as a standalone PowerShell runbook."""

from __future__ import annotations

from flask import Blueprint, Response, abort

from app.audit.service import record
from app.auth.decorators import requires
from app.context import guide_for
from app.extensions import db
from app.models import Deployment, utcnow
from app.runbook.builder import build
from app.runbook.quote import UnsafeValue

bp = Blueprint("runbook", __name__, url_prefix="/deployments/<int:deployment_id>")

# Windows PowerShell 5.1 reads a .ps1 without a byte order mark as ANSI.
BOM = "\ufeff"


def runbook_response(deployment: Deployment, step_key: str | None = None) -> Response:
    """The runbook as a .ps1 download (whole deployment, or one step)."""
    guide = guide_for(deployment)
    if step_key is None:
        steps, name = list(guide.steps), f"amsw-deployment-{deployment.id}.ps1"
    else:
        try:
            steps = [guide.step(step_key)]
        except KeyError:
            abort(404)
        name = f"amsw-deployment-{deployment.id}-{step_key}.ps1"
    try:
        text = build(deployment, steps, utcnow())
    except UnsafeValue as error:
        abort(409, description=f"The runbook cannot be written safely: {error}")
    headers = {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}
    return Response(BOM + text, mimetype="text/plain", headers=headers)


def _audited(response: Response, deployment: Deployment, step_key: str | None) -> Response:
    """Each download goes to the audit trail, like the other exports (the API audits its own)."""
    details = {"step": step_key} if step_key else {}
    record("export.runbook", f"deployment:{deployment.id}", details)
    return response


@bp.get("/runbook.ps1")
@requires("export")
def deployment_runbook(deployment_id: int):
    deployment = db.get_or_404(Deployment, deployment_id)
    return _audited(runbook_response(deployment), deployment, None)


@bp.get("/steps/<step_key>/runbook.ps1")
@requires("export")
def step_runbook(deployment_id: int, step_key: str):
    deployment = db.get_or_404(Deployment, deployment_id)
    return _audited(runbook_response(deployment, step_key), deployment, step_key)
