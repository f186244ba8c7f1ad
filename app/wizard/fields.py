"""Glue between the plain validators in app.validators and WTForms fields."""

from collections.abc import Callable

from wtforms import PasswordField, StringField, TextAreaField
from wtforms.validators import StopValidation, ValidationError

from app import validators


class Rule:
    """A WTForms validator that runs a plain validator and keeps its normalised value."""

    def __init__(self, check: Callable[[str], object], optional: bool = False) -> None:
        self.check = check
        self.optional = optional
        self.field_flags = {} if optional else {"required": True}

    def __call__(self, form, field) -> None:
        if self.optional and not (field.data or "").strip():
            field.data = ""
            return
        try:
            field.data = self.check(field.data)
        except ValueError as error:
            raise ValidationError(str(error)) from None


def required_when(other: str, *values: str):
    """Marks a field required only when another field holds one of `values`."""

    def validate(form, field) -> None:
        if form[other].data in values and not (field.data or "").strip():
            raise ValidationError("This is required for the option you chose.")

    return validate


class CharacterRule:
    """Field mixin: the one character rule (app.validators.check_characters) before any other
    validator, so a NUL or a bidirectional control gets its own message and never reaches a query."""

    multiline = False
    refusal: str | None = None

    def check(self, value: str) -> None:
        """Raise ValueError for a value this field refuses outright."""
        validators.check_characters(value, str(self.label.text), self.multiline)

    def pre_validate(self, form) -> None:
        super().pre_validate(form)
        self.refusal = None
        if not isinstance(self.data, str):
            return
        try:
            self.check(self.data)
        except ValueError as error:
            self.refusal = str(error)
            raise StopValidation(self.refusal) from None


class TextField(CharacterRule, StringField):
    """A one-line free text: a name, a user name, a search term."""


class NoteField(CharacterRule, TextAreaField):
    """Multi-line free text (a note, a reason): tabs and line breaks allowed."""

    multiline = True


class SecretField(CharacterRule, PasswordField):
    """A password or key: no control characters (app.validators.secret), kept as typed."""

    def check(self, value: str) -> None:
        validators.secret(value, str(self.label.text), limit=8192)


def refusal(form) -> str | None:
    """The message of the first field the character rule refused, for a flash after a redirect."""
    return next((f.refusal for f in form if getattr(f, "refusal", None)), None)
