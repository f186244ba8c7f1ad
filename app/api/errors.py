"""JSON errors for every /api/ path: {code, status, message, errors}; never an HTML page or a bare 500."""

from __future__ import annotations

import logging

import marshmallow as ma
from flask import jsonify, request
from werkzeug.exceptions import HTTPException, InternalServerError

from app.api.formjson import flatten_errors

log = logging.getLogger(__name__)

MESSAGES = {
    400: "The request could not be understood.",
    401: "Send a valid API token: Authorization: Bearer <token>.",
    403: "Your role does not allow this.",
    404: "No such resource.",
    405: "This method is not allowed here.",
    409: "The request conflicts with the deployment's current state.",
    413: "The request body is too large.",
    415: "Send the body as application/json.",
    422: "Some values need attention; nothing was saved.",
    500: "Internal error; nothing was changed by this request.",
}


class ErrorSchema(ma.Schema):
    """Every API error has this shape."""

    code = ma.fields.Integer(required=True, metadata={"description": "HTTP status code"})
    status = ma.fields.String(required=True, metadata={"description": "HTTP status name"})
    message = ma.fields.String(required=True, metadata={"description": "What went wrong"})
    errors = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.List(ma.fields.String()),
        metadata={"description": "Messages per field, e.g. nodes.1.name"},
    )


def is_api_request() -> bool:
    """True for paths served by the JSON API (and its OpenAPI document)."""
    return request.path == "/api" or request.path.startswith("/api/")


def json_error(error: Exception):
    """The JSON response for any exception raised while serving an API path."""
    if not isinstance(error, HTTPException):
        log.exception("Unhandled error on %s", request.path, exc_info=error)
        error = InternalServerError()
    code = error.code or 500
    data = getattr(error, "data", None) or {}
    payload = {
        "code": code,
        "status": error.name,
        "message": data.get("message") or MESSAGES.get(code) or error.description or error.name,
    }
    if data.get("errors"):
        payload["errors"] = data["errors"]
    elif data.get("messages"):
        payload["errors"] = _webargs_messages(data["messages"])
    response = jsonify(payload)
    response.status_code = code
    headers = dict(data.get("headers") or {})
    if code == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="amsw"')
    if code == 405 and hasattr(error, "valid_methods") and error.valid_methods:
        headers.setdefault("Allow", ", ".join(error.valid_methods))
    response.headers.update(headers)
    return response


def _webargs_messages(messages: dict) -> dict[str, list[str]]:
    """webargs nests messages by location ({"query": {"limit": [...]}}); flatten to field names."""

    flat: dict[str, list[str]] = {}
    for location_messages in messages.values():
        for key, value in flatten_errors(location_messages).items():
            flat.setdefault(key, []).extend(value)
    return flat
