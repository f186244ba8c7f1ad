"""JSON bodies validated by the same Flask-WTF forms the screens use.

`schema_for(form_class)` derives a strict marshmallow schema from a form's fields (types, choices,
required flags, defaults, list bounds); it documents the body in OpenAPI and rejects wrong types and
unknown fields before the form sees them. `validate_with_form` then feeds the loaded values to the form
through a werkzeug MultiDict (CSRF off), so every rule, normalisation and message is the form's own.
"""

from __future__ import annotations

import functools
from typing import Any

import marshmallow as ma
from marshmallow import fields as mf
from marshmallow import validate as mv
from werkzeug.datastructures import MultiDict
from wtforms import (
    BooleanField,
    FieldList,
    FormField,
    IntegerField,
    RadioField,
    SelectField,
    SelectMultipleField,
)
from wtforms.fields.core import UnboundField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange

MAX_STRING = 8192


class StrictInteger(mf.Integer):
    """A JSON integer: no strings, floats or booleans."""

    def _validated(self, value):
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.make_error("invalid")
        return super()._validated(value)


class StrictBoolean(mf.Boolean):
    """A JSON boolean: no strings or numbers."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class FieldSpec:
    """What a WTForms UnboundField declares (no form, app or request needed to read it)."""

    def __init__(self, unbound: UnboundField) -> None:
        self.field_class = unbound.field_class
        self.args = unbound.args
        kwargs = unbound.kwargs
        self.label = kwargs.get("label", self.args[0] if self.args else "")
        self.validators = kwargs.get("validators", self.args[1] if len(self.args) > 1 else ()) or ()
        self.description = kwargs.get("description", "")
        self.default = kwargs.get("default")
        self.choices = kwargs.get("choices") or ()
        self.min_entries = kwargs.get("min_entries", 0)
        self.max_entries = kwargs.get("max_entries")

    def is_a(self, *classes: type) -> bool:
        return issubclass(self.field_class, classes)


def unbound_fields(form_class: type) -> list[tuple[str, UnboundField]]:
    """The form's declared fields in declaration order."""
    found = [
        (name, value)
        for name in dir(form_class)
        if not name.startswith("_") and isinstance(value := getattr(form_class, name), UnboundField)
    ]
    return sorted(found, key=lambda item: item[1].creation_counter)


def _required(spec: FieldSpec) -> bool:
    if any(isinstance(v, DataRequired | InputRequired) for v in spec.validators):
        return True
    return any((getattr(v, "field_flags", None) or {}).get("required") for v in spec.validators)


def _bounds(spec: FieldSpec, kind: type) -> dict[str, Any]:
    """min/max from Length or NumberRange validators, for the schema."""
    for v in spec.validators:
        if kind is Length and isinstance(v, Length):
            return {"min": v.min if v.min >= 0 else None, "max": v.max if v.max >= 0 else None}
        if kind is NumberRange and isinstance(v, NumberRange):
            return {"min": v.min, "max": v.max}
    return {}


def _default(spec: FieldSpec) -> Any:
    return spec.default() if callable(spec.default) else spec.default


def _choices(spec: FieldSpec) -> list[str]:
    return [str(c[0]) for c in spec.choices]


def _meta(spec: FieldSpec) -> dict[str, str]:
    text = str(spec.label or "")
    if spec.description:
        text = f"{text}. {spec.description}"
    return {"description": text}


def _string(spec: FieldSpec, required: bool) -> mf.Field:
    limits = _bounds(spec, Length)
    validators = [mv.Length(min=limits.get("min"), max=limits.get("max") or MAX_STRING)]
    if spec.is_a(RadioField, SelectField) and _choices(spec):
        validators = [mv.OneOf(_choices(spec))]
    options: dict[str, Any] = {"validate": validators, "metadata": _meta(spec)}
    if required:
        return mf.String(required=True, **options)
    default = _default(spec)
    if not isinstance(default, str):
        # A browser posts the first option of a list nobody touched.
        default = _choices(spec)[0] if spec.is_a(RadioField, SelectField) and spec.choices else ""
    return mf.String(load_default=default, **options)


def _field(spec: FieldSpec) -> mf.Field:
    """One marshmallow field for one declared WTForms field."""
    if spec.is_a(FieldList):
        inner = spec.args[0]
        nested = schema_for(inner.args[0]) if issubclass(inner.field_class, FormField) else None
        item = mf.Nested(nested) if nested else mf.String(validate=mv.Length(max=MAX_STRING))
        size = mv.Length(min=spec.min_entries or None, max=spec.max_entries)
        return mf.List(item, required=True, validate=size, metadata=_meta(spec))
    if spec.is_a(SelectMultipleField):
        item = mf.String(validate=mv.Length(max=200))
        return mf.List(item, load_default=list, metadata=_meta(spec))
    if spec.is_a(BooleanField):
        return StrictBoolean(load_default=bool(_default(spec)), metadata=_meta(spec))
    if spec.is_a(IntegerField):
        rng = _bounds(spec, NumberRange)
        check = [mv.Range(min=rng.get("min"), max=rng.get("max"))] if rng else []
        if _required(spec) or _default(spec) is None:
            return StrictInteger(required=True, validate=check, metadata=_meta(spec))
        return StrictInteger(load_default=_default(spec), validate=check, metadata=_meta(spec))
    return _string(spec, _required(spec))


@functools.cache
def schema_for(form_class: type) -> ma.Schema:
    """A strict schema mirroring `form_class` (cached per class; named after it for OpenAPI)."""
    attrs: dict[str, Any] = {
        name: _field(FieldSpec(unbound))
        for name, unbound in unbound_fields(form_class)
        if name != "csrf_token"
    }
    attrs["Meta"] = type("Meta", (), {"unknown": ma.RAISE, "ordered": True})
    name = form_class.__name__.removesuffix("Form") or form_class.__name__
    return type(f"{name}Input", (ma.Schema,), attrs)()


def to_multidict(data: dict[str, Any], prefix: str = "") -> MultiDict:
    """Loaded JSON values as the form data a browser would post (booleans as presence)."""
    pairs: list[tuple[str, str]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, bool):
            if value:
                pairs.append((name, "y"))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    pairs += list(to_multidict(item, f"{name}-{i}-").items(multi=True))
                else:
                    pairs.append((name, str(item)))
        elif value is not None:
            pairs.append((name, str(value)))
    return MultiDict(pairs)


def flatten_errors(errors: Any, prefix: str = "") -> dict[str, list[str]]:
    """Nested marshmallow or WTForms errors as {"nodes.1.name": ["message", ...]}."""
    out: dict[str, list[str]] = {}
    if isinstance(errors, dict):
        for key, value in errors.items():
            name = "_body" if key == "_schema" and not prefix else str(key)
            for k, v in flatten_errors(value, f"{prefix}{name}.").items():
                out.setdefault(k, []).extend(v)
        return out
    if isinstance(errors, list | tuple):
        for index, item in enumerate(errors):
            if isinstance(item, str):
                out.setdefault(prefix.rstrip(".") or "_body", []).append(item)
            else:
                for k, v in flatten_errors(item, f"{prefix}{index}.").items():
                    out.setdefault(k, []).extend(v)
        return out
    out.setdefault(prefix.rstrip(".") or "_body", []).append(str(errors))
    return out


def load(form_class: type, body: Any) -> tuple[dict | None, dict[str, list[str]]]:
    """Types and unknown fields first: (loaded values, {}) or (None, field errors)."""
    try:
        return schema_for(form_class).load(body), {}
    except ma.ValidationError as error:
        return None, flatten_errors(error.messages)


def validate_with_form(form_class: type, body: Any):
    """(form with normalised data, {}) or (None, field errors): the schema, then the form itself."""
    values, errors = load(form_class, body)
    if errors:
        return None, errors
    form = form_class(formdata=to_multidict(values), meta={"csrf": False})
    if not form.validate():
        return None, flatten_errors(form.errors)
    return form, {}
