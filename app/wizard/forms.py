"""Forms the generic step view needs besides each step's own inputs form."""

from flask_wtf import FlaskForm
from wtforms import PasswordField, RadioField, SelectMultipleField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional


class RunForm(FlaskForm):
    """WinRM credentials for this run; kept encrypted only while work is pending."""

    username = StringField(
        "WinRM user", [DataRequired(), Length(max=255)], description="DOMAIN\\user or user@domain"
    )
    password = PasswordField("Password", [DataRequired(), Length(max=1024)])
    fix = StringField("Fix to apply first", [Optional(), Length(max=64)])


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
    reason = TextAreaField("Reason", [Optional(), Length(max=2000)])
    nodes = SelectMultipleField("Nodes", choices=[], validate_choice=False)


class SimpleForm(FlaskForm):
    """A bare form for buttons that only need the CSRF token (cancel, skip)."""

    reason = TextAreaField("Reason", [Optional(), Length(max=2000)])
