"""The /api/v1 blueprint: bearer-token authentication, role checks, strict JSON bodies, audit.

Session cookies are never consulted here: a request authenticates with `Authorization: Bearer <token>`
or gets 401. CSRF does not apply (the blueprint is exempt) because a browser cannot attach the token.
"""

from __future__ import annotations

import functools
import json
import unicodedata
from typing import Any

from flask import current_app, g, request
from flask_smorest import Blueprint, abort

from app.api import tokens
from app.api.audit import record_api_call
from app.api.errors import ErrorSchema, json_error
from app.auth.decorators import may_drive
from app.extensions import db
from app.handover import lease
from app.models import ApiToken, Deployment, User

bp = Blueprint(
    "api",
    __name__,
    url_prefix="/api/v1",
    description="Deployments, step inputs, runs, decisions, events and history.",
)
bp.register_error_handler(Exception, json_error)

API_MAX_CONTENT_LENGTH = 64 * 1024
MAX_DEPTH = 20


@bp.before_request
def authenticate() -> None:
    """Resolve the bearer token (only) and bound the body size for every API call."""
    request.max_content_length = current_app.config.get(
        "API_MAX_CONTENT_LENGTH", API_MAX_CONTENT_LENGTH
    )
    g.api_token = tokens.resolve(request.headers.get("Authorization"))
    g.api_user = g.api_token.user if g.api_token is not None else None
    if g.api_user is None:
        abort(401)


@bp.after_request
def audit(response):
    """Every API call goes to the audit trail, refusals included."""

    record_api_call(response)
    return response


def api_user() -> User:
    """The user the current token acts for."""
    return g.api_user


def api_token() -> ApiToken:
    """The token the current request authenticated with."""
    return g.api_token


def needs(permission: str):
    """Refuse unless the token's user (by current role) has `permission`.

    `drive` on a deployment follows the screens' rules: one's own deployment (or `drive_any`), and a
    state-changing call takes the deployment's lease or is refused with 409 while someone else drives.
    """

    def decorate(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            user = g.api_user
            if not user.can(permission):
                abort(403, message=f"Your role ({user.role}) does not allow '{permission}'.")
            if permission == "drive" and "deployment_id" in kwargs:
                _check_driver(user, kwargs["deployment_id"])
            return view(*args, **kwargs)

        wrapper.required_permissions = (permission, permission)
        return wrapper

    return decorate


def _check_driver(user: User, deployment_id: int) -> None:

    deployment = db.session.get(Deployment, deployment_id)
    if deployment is None:
        abort(404, message=f"No deployment {deployment_id}.")
    if not may_drive(user, deployment):
        abort(403, message="You may drive only your own deployments.")
    if request.method not in ("GET", "HEAD") and not lease.acquire(deployment.id, user.id):
        holder = lease.state(deployment.id, user).holder_name or "someone else"
        abort(409, message=f"{holder} is driving this deployment now; nothing was changed.")


def body_doc(schema, description: str = "") -> dict[str, Any]:
    """The OpenAPI requestBody for a marshmallow schema (instance or class, or a raw JSON schema)."""
    return {
        "required": True,
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }


def read_json() -> dict[str, Any]:
    """The body as a JSON object, or a 4xx: 415 not JSON, 413 too big, 400 malformed, 422 not an object."""
    if not request.is_json:
        abort(415, message="Send the body as application/json.")
    raw = request.get_data(cache=True)
    try:
        body = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        abort(400, message="The body is not valid UTF-8.")
    except RecursionError:
        abort(400, message="The JSON body is nested too deeply.")
    except ValueError as error:
        abort(400, message=f"Malformed JSON: {error}.")
    if not isinstance(body, dict):
        abort(422, message="The body must be a JSON object.", errors={"_body": ["Not an object."]})
    problems = _bad_strings(body)
    if problems:
        abort(422, message="Some values contain characters that cannot be stored.", errors=problems)
    return body


def _bad_strings(value: Any, path: str = "", depth: int = 0) -> dict[str, list[str]]:
    """NUL, lone surrogates and excessive nesting anywhere in the body, by dotted path."""
    where = path or "_body"
    if depth > MAX_DEPTH:
        return {where: ["Nested too deeply."]}
    if isinstance(value, str):
        if "\x00" in value or any(unicodedata.category(c) == "Cs" for c in value):
            return {where: ["Contains a NUL or an unpaired surrogate character."]}
        return {}
    if not isinstance(value, dict | list):
        return {}
    items = value.items() if isinstance(value, dict) else enumerate(value)
    found: dict[str, list[str]] = {}
    for key, item in items:
        if isinstance(key, str) and _bad_strings(key, "", depth + 1):
            found[f"{path}{'.' if path else ''}(key)"] = ["Field name contains a bad character."]
            continue
        found |= _bad_strings(item, f"{path}{'.' if path else ''}{key}", depth + 1)
    return found


def unprocessable(errors: dict[str, list[str]], message: str | None = None):
    """Abort with 422 and the per-field messages."""
    abort(422, message=message or "Some values need attention; nothing was saved.", errors=errors)


ERROR_RESPONSES = (400, 401, 403, 404, 409, 413, 415, 422)


def errors_doc(*codes: int):
    """Document the error responses a view can return (all share ErrorSchema)."""

    def decorate(view):
        for code in codes:
            view = bp.alt_response(code, schema=ErrorSchema, description=_ERROR_TEXT[code])(view)
        return view

    return decorate


_ERROR_TEXT = {
    400: "Malformed request (e.g. invalid JSON)",
    401: "Missing, unknown or revoked token",
    403: "The token's role does not allow this",
    404: "No such deployment or step",
    409: "Not possible in the deployment's current state",
    413: "Body too large",
    415: "Body is not application/json",
    422: "Validation failed; messages per field",
}
