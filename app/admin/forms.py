"""Forms of the user administration screens; the rules themselves live in app.admin.service."""

from flask_wtf import FlaskForm
from wtforms import SelectField
from wtforms.validators import EqualTo, InputRequired, ValidationError

from app.admin import service
from app.auth.roles import ROLES
from app.wizard.fields import SecretField, TextField


def _rule(check):
    """A WTForms validator that runs a service check and keeps its normalised value."""

    def validate(form, field) -> None:
        try:
            field.data = check(field.data)
        except service.AdminError as error:
            raise ValidationError(str(error)) from None

    return validate


def _role_field() -> SelectField:
    # validate_choice=False so an unknown role gets the service's clear message, not WTForms' own.
    return SelectField(
        "Role",
        choices=[(r, r) for r in ROLES],
        validate_choice=False,
        validators=[_rule(service.check_role)],
    )


def _password_fields(label: str) -> tuple[SecretField, SecretField]:
    password = SecretField(
        label,
        [InputRequired(), _rule(service.check_password)],
        description=f"At least {service.MIN_PASSWORD} characters. Tell the user through a safe channel.",
    )
    confirm = SecretField(
        "Repeat the password", [InputRequired(), EqualTo("password", "The passwords do not match.")]
    )
    return password, confirm


class CreateUserForm(FlaskForm):
    """A new local account: name, role and an initial password typed by the admin."""

    username = TextField(
        "Username",
        [InputRequired(), _rule(service.check_username)],
        description=f"{service.USERNAME_RULE[0].upper()}{service.USERNAME_RULE[1:]}.",
    )
    role = _role_field()
    password, confirm = _password_fields("Initial password")


class RoleForm(FlaskForm):
    """The role select on each row of the list."""

    role = _role_field()


class PasswordForm(FlaskForm):
    """A new password for a local account."""

    password, confirm = _password_fields("New password")


class ConfirmForm(FlaskForm):
    """A bare form for the enable and disable buttons (CSRF token only)."""
