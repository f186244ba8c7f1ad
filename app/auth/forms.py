"""Sign-in form."""

from flask_wtf import FlaskForm
from wtforms.validators import DataRequired, EqualTo, InputRequired, Length, ValidationError

from app.admin import service
from app.wizard.fields import SecretField, TextField


class LoginForm(FlaskForm):
    """Username and password."""

    username = TextField("Username", [DataRequired(), Length(max=64)])
    password = SecretField("Password", [DataRequired(), Length(max=1024)])


def _new_password_rule(form, field) -> None:
    """The rule of an admin reset (app.admin.service.check_password), for one's own password."""

    try:
        field.data = service.check_password(field.data)
    except service.AdminError as error:
        raise ValidationError(str(error)) from None


class OwnPasswordForm(FlaskForm):
    """A signed-in user changes their own local password: the current one first."""

    current = SecretField("Current password", [InputRequired(), Length(max=1024)])
    password = SecretField(
        "New password",
        [InputRequired(), _new_password_rule],
        description="Your other signed-in sessions end when it changes; this one stays.",
    )
    confirm = SecretField(
        "Repeat the new password",
        [InputRequired(), EqualTo("password", "The new passwords do not match.")],
    )
