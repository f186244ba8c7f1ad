"""The versioned JSON API (/api/v1), its OpenAPI document, API tokens and the runbook export."""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api

from app.api import deployments, events, steps  # noqa: F401 - routes register on import
from app.api.core import bp
from app.api.errors import ErrorSchema
from app.api.steps import StepKeyConverter, step_key_schema
from app.api.ui import bp as ui_bp
from app.extensions import csrf
from app.runbook.views import bp as runbook_bp

OPENAPI = {
    "API_TITLE": "AMS Cluster Wizard API",
    "API_VERSION": "v1",
    "OPENAPI_VERSION": "3.0.3",
    "OPENAPI_URL_PREFIX": "/api/v1",
    "OPENAPI_JSON_PATH": "openapi.json",
}


class WizardApi(Api):
    """flask-smorest's Api, without its app-wide HTTPException handler (the screens keep HTML pages)."""

    ERROR_SCHEMA = ErrorSchema
    DEFAULT_ERROR_RESPONSE_NAME = None

    def _register_error_handlers(self):
        """Errors on /api/ paths are handled by app.api.errors (see register_api)."""


def register_api(app: Flask) -> None:
    """Bind the API blueprint, its OpenAPI document, the token and docs pages, and runbooks."""

    for key, value in OPENAPI.items():
        app.config.setdefault(key, value)
    app.url_map.converters["step_key"] = StepKeyConverter
    api = WizardApi(
        app,
        spec_kwargs={
            "info": {"description": "Everything the wizard's screens do, for scripted installs."},
            "servers": [{"url": "/"}],
        },
    )
    api.register_converter(StepKeyConverter, step_key_schema)
    api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "amsw_<prefix>_<secret>"}
    )
    api.spec.options["security"] = [{"bearerAuth": []}]
    csrf.exempt(bp)
    api.register_blueprint(bp)
    app.register_blueprint(ui_bp)
    app.register_blueprint(runbook_bp)
    _mark_public(app, "api-docs.openapi_json")
    app.extensions["amsw_api"] = api


def _mark_public(app: Flask, endpoint: str) -> None:
    """The OpenAPI document is public (it holds no data); tag its view like app.auth's @public."""
    view = app.view_functions[endpoint]

    def public_view(*args, **kwargs):
        return view(*args, **kwargs)

    public_view.required_permissions = (None, None)
    app.view_functions[endpoint] = public_view
