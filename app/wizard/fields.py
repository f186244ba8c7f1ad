"""Glue between the plain validators in app.validators and WTForms fields."""

from collections.abc import Callable

from wtforms.validators import ValidationError


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
