"""Record every state-changing request (endpoint and ids only, never form values) after it succeeds."""

import logging

from flask import Flask, request

from app.audit.service import record

log = logging.getLogger(__name__)
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Endpoints that write their own, more specific record (the JSON API audits every call itself).
SELF_AUDITED = frozenset(
    {
        "auth.login",
        "handover.take_over",
        "admin.new_user",
        "admin.change_role",
        "admin.disable",
        "admin.enable",
        "admin.reset_password",
    }
)


def audit_request(response):
    """after_request: one `request.<endpoint>` record per successful write."""
    if request.method not in WRITE_METHODS or response.status_code >= 400:
        return response
    endpoint = request.endpoint or ""
    if not endpoint or endpoint in SELF_AUDITED or endpoint.startswith("api."):
        return response
    if request.blueprint == "api":  # app.api.audit records every API call with the token's user
        return response
    details = {"method": request.method, "path": request.path, "status": response.status_code}
    details["args"] = {k: str(v) for k, v in (request.view_args or {}).items()}
    try:
        record(f"request.{request.endpoint}", request.path, details)
    except Exception:
        log.exception("Could not write the audit record for %s", request.path)
    return response


def register_audit(app: Flask) -> None:
    """Wire the request hook."""
    app.after_request(audit_request)
