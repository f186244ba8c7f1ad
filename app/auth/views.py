"""Login and logout; every other page requires a session."""

import hmac
from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_user, logout_user
from sqlalchemy import select

from app.audit.service import record
from app.auth import ldap
from app.auth.decorators import public, requires
from app.auth.forms import LoginForm
from app.extensions import db, login_manager
from app.models import User, utcnow

bp = Blueprint("auth", __name__)
PUBLIC_ENDPOINTS = frozenset({"auth.login", "auth.favicon", "static"})
# Authenticate every request themselves with API tokens; the session cookie is never used there.
TOKEN_BLUEPRINTS = frozenset({"api", "api-docs"})

login_manager.login_view = "auth.login"
login_manager.login_message = "Please sign in to continue."
login_manager.login_message_category = "info"


@login_manager.user_loader
def load_user(token: str) -> User | None:
    """Flask-Login hook: the session's `<id>:<mark>` (User.get_id). A disabled account, or a session
    from before the account's password changed, stops working on its next request.

    Flask-Login checks `is_active` only in login_user(), so the loader refuses inactive users here.
    """
    user_id, _, mark = token.partition(":")
    user = db.session.get(User, int(user_id)) if user_id.isdigit() else None
    if user is None or not user.is_active:
        return None
    return user if hmac.compare_digest(mark, user.session_mark()) else None


@bp.before_app_request
def require_login():
    """Every page except the login page and static files needs a signed-in user."""
    if request.endpoint in PUBLIC_ENDPOINTS or request.blueprint in TOKEN_BLUEPRINTS:
        return None
    if current_user.is_authenticated:
        return None
    if request.endpoint is None:
        return None
    return login_manager.unauthorized()


def _safe_next(target: str | None) -> str:
    """Only redirect to a path on this site."""
    if target and not urlsplit(target).netloc and target.startswith("/"):
        return target
    return url_for("deployments.index")


def _authenticate(username: str, password: str) -> User | None:
    """A local account first; the directory (when configured) for everyone else."""
    user = db.session.scalar(select(User).where(User.username == username))
    if user and user.active and user.check_password(password):
        return user
    return ldap.directory_login(username, password) if ldap.enabled() else None


@bp.route("/favicon.ico")
@public
def favicon():
    """Browsers ask for /favicon.ico on pages without a <link rel="icon"> (raw JSON, downloads)."""
    return redirect(url_for("static", filename="img/favicon.svg"), 301)


@bp.route("/login", methods=["GET", "POST"])
@public
def login():
    form = LoginForm()
    if form.validate_on_submit():
        username = form.username.data.strip()
        user = _authenticate(username, form.password.data)
        if user is not None:
            user.last_login_at = utcnow()
            db.session.commit()
            login_user(user)
            record("login.succeeded", username, {"role": user.role})
            return redirect(_safe_next(request.args.get("next")))
        db.session.rollback()
        record("login.failed", username[:64], actor_name=username[:64])
        flash("Unknown username or wrong password.", "error")
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=["POST"])
@requires("view")
def logout():
    logout_user()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))
