"""History list, a deployment's history page, exports, the dashboard and the audit trail page."""

import json

from flask import Blueprint, Response, abort, render_template, request
from sqlalchemy import select

from app import validators
from app.audit.service import latest, record
from app.auth.decorators import requires
from app.extensions import db
from app.history import charts, search
from app.history.export import deployment_json, deployments_csv
from app.history.timeline import deployment_page
from app.models import Deployment, User

bp = Blueprint("history", __name__)
CSV_LIMIT = 50000


@bp.get("/history")
@requires("view")
def index():
    filters = _filters()
    number = validators.page_number(request.args.get("page", type=int))
    rows, total = search.page(filters, number)
    operators = db.session.scalars(select(User.username).order_by(User.username)).all()
    return render_template(
        "history/index.html",
        rows=rows,
        total=total,
        page=number,
        filters=filters,
        facts=search.facts([d.id for d in rows]),
        per_page=search.PER_PAGE,
        statuses=search.STATUSES,
        operators=operators,
    )


def _filters() -> search.Filters:
    """The request's filters, or a 400 page that says which term was refused."""
    try:
        return search.Filters.from_args(request.args)
    except ValueError as error:
        abort(400, description=f"{error} Nothing was searched")


@bp.get("/history.csv")
@requires("export")
def export_csv():
    filters = _filters()
    rows, _ = search.page(filters, 1, CSV_LIMIT)
    record("export.csv", "/history.csv", {"filters": filters.as_args(), "rows": len(rows)})
    headers = {"Content-Disposition": "attachment; filename=deployments.csv"}
    return Response(deployments_csv(rows), mimetype="text/csv", headers=headers)


@bp.get("/deployments/<int:deployment_id>/history")
@requires("view")
def detail(deployment_id: int):
    deployment = db.get_or_404(Deployment, deployment_id)
    return render_template("history/detail.html", **deployment_page(deployment))


@bp.get("/deployments/<int:deployment_id>/report")
@requires("export")
def report(deployment_id: int):
    deployment = db.get_or_404(Deployment, deployment_id)
    record("export.report", f"deployment:{deployment.id}")
    return render_template("history/report.html", **deployment_page(deployment))


@bp.get("/deployments/<int:deployment_id>/export.json")
@requires("export")
def export_json(deployment_id: int):
    deployment = db.get_or_404(Deployment, deployment_id)
    body = json.dumps(deployment_json(deployment), indent=2, default=str)
    record("export.json", f"deployment:{deployment.id}")
    name = f"deployment-{deployment.id}.json"
    headers = {"Content-Disposition": f"attachment; filename={name}"}
    return Response(body, mimetype="application/json", headers=headers)


@bp.get("/dashboard")
@requires("view")
def dashboard():
    return render_template(
        "history/dashboard.html",
        weeks=charts.stacked_weeks(charts.outcomes_by_week()),
        durations=charts.bar_chart(charts.median_step_seconds()),
        failures=charts.bar_chart(charts.failure_causes()),
        outcomes=charts.OUTCOMES,
    )


@bp.get("/audit")
@requires("audit")
def audit():
    number = validators.page_number(request.args.get("page", type=int))
    return render_template("history/audit.html", rows=latest(number), page=number)
