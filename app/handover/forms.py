"""Forms for taking over a deployment and adding a note."""

from flask_wtf import FlaskForm
from wtforms import TextAreaField
from wtforms.validators import DataRequired, Length


class TakeOverForm(FlaskForm):
    """A take-over always says why."""

    reason = TextAreaField("Reason for taking over", [DataRequired(), Length(min=3, max=2000)])


class NoteForm(FlaskForm):
    """A hand-over note on the deployment (or on one step)."""

    text = TextAreaField("Note", [DataRequired(), Length(max=2000)])
