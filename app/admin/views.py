"""/admin/users: list accounts, create local ones, change roles, disable and reset passwords."""

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user, login_user

from app.admin import service
from app.admin.forms import ConfirmForm, CreateUserForm, PasswordForm, RoleForm
from app.auth.decorators import requires
from app.extensions import db
from app.models import User

bp = Blueprint("admin", __name__, url_prefix="/admin")


def _back(message: str, category: str = "success"):
    flash(message, category)
    return redirect(url_for("admin.users"), code=303)


def _refused(error: service.AdminError):
    db.session.rollback()
    return _back(str(error), "error")


@bp.get("/users")
@requires("manage_users")
def users():
    return render_template(
        "admin/users.html",
        users=service.list_users(),
        source=service.source,
        role_form=RoleForm(formdata=None),
        confirm_form=ConfirmForm(),
    )


@bp.route("/users/new", methods=["GET", "POST"])
@requires("manage_users")
def new_user():
    form = CreateUserForm()
    if form.validate_on_submit():
        try:
            user = service.create_local_user(form.username.data, form.role.data, form.password.data)
            return _back(f"Created {user.role} {user.username}.")
        except service.AdminError as error:
            db.session.rollback()
            form.username.errors.append(str(error))
    if form.is_submitted():
        flash("The user was not created; correct the fields marked below.", "error")
    return render_template("admin/new_user.html", form=form), 400 if form.errors else 200


@bp.post("/users/<int:user_id>/role")
@requires("manage_users")
def change_role(user_id: int):
    user, form = db.get_or_404(User, user_id), RoleForm()
    if not form.validate():
        return _back(" ".join(e for errors in form.errors.values() for e in errors), "error")
    try:
        changed = service.change_role(user, form.role.data, current_user)
    except service.AdminError as error:
        return _refused(error)
    if not changed:
        return _back(f"{user.username} is already {user.role}; nothing changed.", "info")
    return _back(f"{user.username} is now {user.role}.")


def _set_active(user_id: int, active: bool):
    user = db.get_or_404(User, user_id)
    if not ConfirmForm().validate():
        return _back("The form expired; please try again.", "error")
    try:
        changed = service.set_active(user, active, current_user)
    except service.AdminError as error:
        return _refused(error)
    state = "enabled" if active else "disabled"
    if not changed:
        return _back(f"{user.username} is already {state}; nothing changed.", "info")
    return _back(f"{user.username} is {state}.")


@bp.post("/users/<int:user_id>/disable")
@requires("manage_users")
def disable(user_id: int):
    return _set_active(user_id, False)


@bp.post("/users/<int:user_id>/enable")
@requires("manage_users")
def enable(user_id: int):
    return _set_active(user_id, True)


@bp.route("/users/<int:user_id>/password", methods=["GET", "POST"])
@requires("manage_users")
def reset_password(user_id: int):
    user, form = db.get_or_404(User, user_id), PasswordForm()
    if service.source(user) == "directory":
        return _back(f"{user.username} signs in through the directory; reset it there.", "error")
    if form.validate_on_submit():
        service.reset_password(user, form.password.data)  # ends the account's sessions...
        if user.id == current_user.id:
            login_user(user)  # ...but this one, the admin's own
        return _back(f"Password of {user.username} reset. Tell them through a safe channel.")
    if form.is_submitted():
        flash("The password was not changed; correct the fields marked below.", "error")
    page = render_template("admin/reset_password.html", form=form, user=user)
    return page, 400 if form.errors else 200
