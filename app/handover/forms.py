"""Forms for taking over a deployment and adding a note."""

from flask_wtf import FlaskForm
from wtforms.validators import DataRequired, Length

from app.wizard.fields import NoteField


class TakeOverForm(FlaskForm):
    """A take-over always says why."""

    reason = NoteField("Reason for taking over", [DataRequired(), Length(min=3, max=2000)])


class NoteForm(FlaskForm):
    """A hand-over note on the deployment (or on one step)."""

    text = NoteField("Note", [DataRequired(), Length(max=2000)])
