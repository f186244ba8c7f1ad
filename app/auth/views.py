"""Login and logout; every other page requires a session."""

import hmac
from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_user, logout_user
from sqlalchemy import select

from app.audit.service import record
from app.auth import ldap, throttle
from app.auth.decorators import public, requires
from app.auth.forms import LoginForm, OwnPasswordForm
from app.extensions import db, login_manager
from app.models import User, utcnow
from app.models.user import check_dummy_password

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
    """A local account first; the directory (when configured) for everyone else.

    Exactly one Argon2 verification per attempt, a throwaway one for unknown and directory
    accounts, so the time taken does not tell which local names exist. A directory sign-in then
    takes what the directory takes."""
    user = db.session.scalar(select(User).where(User.username == username))
    if user is not None and user.has_local_password():
        if user.check_password(password) and user.active:
            return user
    else:
        check_dummy_password(password)
    return ldap.directory_login(username, password) if ldap.enabled() else None


def _signed_in(user: User, username: str, attempt: throttle.Claim):
    user.last_login_at = utcnow()
    db.session.commit()
    throttle.succeeded(attempt)
    login_user(user)
    record("login.succeeded", username, {"role": user.role})
    return redirect(_safe_next(request.args.get("next")))


def _failed(username: str, attempt: throttle.Claim) -> None:
    """Audit the failure (and a lock it started) and say so; the count was taken by the claim."""
    db.session.rollback()
    name = username[:64]
    record("login.failed", name, actor_name=name)
    for kind, seconds in attempt.locked.items():
        details = {"scope": kind, "seconds": seconds}
        record("login.locked", attempt.keys[kind], details, actor_name=name)
    flash("Unknown username or wrong password.", "error")
    if attempt.locked:
        flash(_too_many(max(attempt.locked.values())), "error")


def _too_many(seconds: int) -> str:
    return f"Too many failed sign-ins: try again in {seconds} s."


def _throttled(form: LoginForm, username: str, attempt: throttle.Claim):
    """Refused without checking the password while the account or the address is locked."""
    name = username[:64]
    record("login.throttled", name, {"retry_after": attempt.retry_after}, actor_name=name)
    flash(_too_many(attempt.retry_after), "error")
    page = render_template("auth/login.html", form=form)
    return page, 429, {"Retry-After": str(attempt.retry_after)}


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
        attempt = throttle.claim(username, request.remote_addr or "")
        if not attempt.allowed:
            return _throttled(form, username, attempt)
        user = _authenticate(username, form.password.data)
        if user is not None:
            return _signed_in(user, username, attempt)
        _failed(username, attempt)
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=["POST"])
@requires("view")
def logout():
    logout_user()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@requires("view")
def change_password():
    """A user changes their own password: the current one is required, the new one follows the
    rule of an admin reset. A new password hash changes the account's session mark
    (User.session_mark), so its sessions elsewhere end; this one is signed in again."""
    user = db.session.get(User, current_user.id)
    if not user.has_local_password():
        flash("You sign in through the directory: change your password there.", "error")
        return render_template("auth/password.html", form=None), 409
    form = OwnPasswordForm()
    status = 200
    if form.validate_on_submit():
        if not user.check_password(form.current.data):
            record("user.password_change_refused", user.username, {"reason": "wrong current"})
            db.session.commit()
            form.current.errors = ["This is not your current password."]
            status = 400
        elif user.check_password(form.password.data):
            form.password.errors = ["The new password must differ from the current one."]
            status = 400
        else:
            user.set_password(form.password.data)
            db.session.commit()
            record("user.password_changed", user.username)
            login_user(user)  # the new mark: this session goes on, the others end
            flash(
                "Your password was changed. Other sessions of your account are signed out.",
                "success",
            )
            return redirect(url_for("deployments.index"))
    elif form.is_submitted():
        status = 400
    return render_template("auth/password.html", form=form), status
