"""Login and logout; every other page requires a session."""

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import select

from app.auth.forms import LoginForm
from app.extensions import db, login_manager
from app.models import User, utcnow

bp = Blueprint("auth", __name__)
PUBLIC_ENDPOINTS = frozenset({"auth.login", "static"})

login_manager.login_view = "auth.login"
login_manager.login_message = "Please sign in to continue."
login_manager.login_message_category = "info"


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    """Flask-Login hook."""
    return db.session.get(User, int(user_id))


@bp.before_app_request
def require_login():
    """Every page except the login page and static files needs a signed-in user."""
    if request.endpoint in PUBLIC_ENDPOINTS or current_user.is_authenticated:
        return None
    if request.endpoint is None:
        return None
    return login_manager.unauthorized()


def _safe_next(target: str | None) -> str:
    """Only redirect to a path on this site."""
    if target and not urlsplit(target).netloc and target.startswith("/"):
        return target
    return url_for("deployments.index")


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    if form.validate_on_submit():
        user = db.session.scalar(select(User).where(User.username == form.username.data.strip()))
        if user and user.active and user.check_password(form.password.data):
            user.last_login_at = utcnow()
            db.session.commit()
            login_user(user)
            return redirect(_safe_next(request.args.get("next")))
        flash("Unknown username or wrong password.", "error")
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    logout_user()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))
