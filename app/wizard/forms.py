"""Forms the generic step view needs besides each step's own inputs form."""

from flask_wtf import FlaskForm
from wtforms import RadioField, SelectMultipleField
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from app import validators
from app.wizard.fields import NoteField, SecretField, TextField


class RunForm(FlaskForm):
    """WinRM credentials for this run; kept encrypted only while work is pending."""

    username = TextField(
        "WinRM user", [DataRequired(), Length(max=255)], description="DOMAIN\\user or user@domain"
    )
    password = SecretField("Password", [DataRequired(), Length(max=1024)])
    fix = TextField("Fix to apply first", [Optional(), Length(max=64)])


class DecisionForm(FlaskForm):
    """The operator's answer to a paused step."""

    decision = RadioField(
        "Decision",
        choices=[
            ("retry", "Retry the step (detects what is already done)"),
            ("retry_failed", "Retry only the failed nodes"),
            ("skip", "Skip this step (a reason is required)"),
            ("exclude", "Exclude the failed nodes from the deployment"),
            ("abort", "Abort the deployment"),
        ],
        validators=[DataRequired()],
    )
    reason = NoteField("Reason", [Optional(), Length(max=2000)])
    nodes = SelectMultipleField("Nodes", choices=[], validate_choice=False)

    def validate_nodes(self, field) -> None:
        try:
            for name in field.data or []:
                validators.check_characters(name, "A node name")
        except ValueError as error:
            field.refusal = str(error)
            raise ValidationError(field.refusal) from None


class SimpleForm(FlaskForm):
    """A bare form for buttons that only need the CSRF token (cancel, skip)."""

    reason = NoteField("Reason", [Optional(), Length(max=2000)])
