"""`@requires(permission)`: the one way a view states who may call it.

Each decorated view carries `required_permissions = (for GET/HEAD, for other methods)`, which the
route-table test reads. `drive` on a view with a `deployment_id` also needs the deployment to be the
user's own (or `drive_any`) and, for state-changing requests, the deployment's lease (app.handover).
"""

from functools import cache, wraps

from flask import abort, g, request
from flask_login import current_user
from sqlalchemy import bindparam, select

from app.extensions import db, login_manager
from app.handover.lease import refuse_unless_driver
from app.models import Deployment, DeploymentLease

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def may_drive(user, deployment) -> bool:
    """Drivers drive their own deployments; helpdesk and admins drive any."""
    if user.can("drive_any"):
        return True
    return user.can("drive") and deployment.created_by_id == user.id


def _check(permission: str, deployment_id: int | None):
    """None when allowed, else the response that refuses."""
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if not current_user.can(permission):
        abort(403)
    # Who acts, for the audit record written after the view (whose commits expire the user row).
    g.amsw_actor = (current_user.id, current_user.username)
    if permission != "drive" or deployment_id is None:
        return None
    if request.method in SAFE_METHODS:
        deployment = db.get_or_404(Deployment, deployment_id)
    else:  # one query for both; g keeps the lease row alive in the session for the lease check
        deployment, g.amsw_lease_row = _with_lease(deployment_id)
    # Held in g: the view's own get() then finds it in the session (whose identity map is weak).
    g.amsw_deployment = deployment
    if not may_drive(current_user, deployment):
        abort(403)
    if request.method in SAFE_METHODS:
        return None
    return refuse_unless_driver(deployment, current_user)


@cache
def _lease_query():
    """Built once: every page of a deployment runs it."""
    return (
        select(Deployment, DeploymentLease)
        .outerjoin(DeploymentLease, DeploymentLease.deployment_id == Deployment.id)
        .where(Deployment.id == bindparam("deployment_id"))
    )


def _with_lease(deployment_id: int) -> tuple[Deployment, DeploymentLease | None]:
    """The deployment (404 if none) and its lease row, if it has one, in one query."""
    row = db.session.execute(_lease_query(), {"deployment_id": deployment_id}).first()
    if row is None:
        abort(404)
    return row[0], row[1]


def requires(permission: str, post: str | None = None):
    """Allow the view to users whose role grants `permission` (`post` for state-changing methods)."""

    def decorate(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            needed = permission if request.method in SAFE_METHODS else (post or permission)
            refused = _check(needed, kwargs.get("deployment_id"))
            return refused if refused is not None else view(*args, **kwargs)

        wrapped.required_permissions = (permission, post or permission)
        return wrapped

    return decorate


def public(view):
    """Mark a view as open to anonymous users (the login page)."""
    view.required_permissions = (None, None)
    return view
