"""Forms the generic step view needs besides each step's own inputs form."""

from flask_wtf import FlaskForm
from wtforms import RadioField, SelectMultipleField
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from app import validators
from app.steps import FIX_ID_MAX
from app.wizard.fields import NoteField, SecretField, TextField

STORED, OTHER = "stored", "other"


class CredentialsForm(FlaskForm):
    """WinRM credentials for the next attempt: the stored ones (offered while the vault holds them
    and no node refused them) or others typed here. Kept encrypted only while work is pending."""

    credentials = RadioField(
        "WinRM credentials",
        choices=[(STORED, "Use the stored credentials"), (OTHER, "Enter other credentials")],
        validators=[Optional()],
        validate_choice=False,
    )
    username = TextField(
        "WinRM user", [Optional(), Length(max=255)], description="DOMAIN\\user or user@domain"
    )
    password = SecretField("Password", [Optional(), Length(max=1024)])
    fix = TextField("Fix to apply first", [Optional(), Length(max=FIX_ID_MAX)])

    def chosen_credentials(self, held_now) -> tuple[bool, tuple[str, str] | None]:
        """(valid, typed credentials or None for the stored ones), after validate().

        What is on the screen is what runs: a typed user name and password are used even when
        the stored ones were preselected; empty fields mean the stored ones, if they may be used.
        held_now: returns vault.held() for the deployment (None: nothing stored); called only
        when the fields are empty, so typed credentials cost no vault read."""
        username = (self.username.data or "").strip()
        password = self.password.data or ""
        if username and password:
            return True, (username, password)
        if username or password:
            missing = self.password if username else self.username
            missing.errors = [*missing.errors, "Enter both the user name and the password."]
            return False, None
        held = held_now()
        if held is not None and held.usable and self.credentials.data != OTHER:
            return True, None
        message = "Enter the WinRM user name and password to run this step."
        if held is not None and not held.usable:
            message = "A node refused the stored credentials: enter the user name and password."
        self.username.errors = [*self.username.errors, message]
        return False, None


class StepRunForm(CredentialsForm):
    """Start the step: its inputs (the step's own form, same request) and WinRM credentials."""


class RunForm(FlaskForm):
    """Credentials that must be typed (a driver who took over resumes with their own)."""

    username = TextField(
        "WinRM user", [DataRequired(), Length(max=255)], description="DOMAIN\\user or user@domain"
    )
    password = SecretField("Password", [DataRequired(), Length(max=1024)])


class DecisionForm(CredentialsForm):
    """The operator's answer to a paused step; a retry takes credentials (and a fix) as Run does."""

    decision = RadioField(
        "Decision",
        choices=[
            ("retry", "Retry the step (it detects what is already done)"),
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
