"""Forms of the API token page."""

from flask_wtf import FlaskForm

from app import validators
from app.wizard.fields import Rule, TextField


class TokenForm(FlaskForm):
    """Name a new token so it can be told apart (and revoked) later."""

    name = TextField(
        "Token name",
        [Rule(lambda v: validators.plain_text(v, "Token name", 80))],
        description="What the token is for, e.g. 'install script on build01'.",
    )


class RevokeForm(FlaskForm):
    """A bare form for the revoke button (CSRF token only)."""
