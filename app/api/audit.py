"""Every API call goes to the audit trail (app.audit), attributed to the token's user, refusals too."""

from __future__ import annotations

import logging

from flask import g, request

from app.audit.service import record
from app.extensions import db

log = logging.getLogger(__name__)


def record_api_call(response) -> None:
    """One `api.<endpoint>` record per call: method, path, status, token prefix; never body values."""
    if response.status_code >= 400:
        db.session.rollback()  # a refused call leaves nothing half-saved
    token = getattr(g, "api_token", None)
    user = getattr(g, "api_user", None)
    details = {
        "method": request.method,
        "path": request.path,
        "status": response.status_code,
        "token": f"amsw_{token.prefix}" if token is not None else None,
        "args": {k: str(v) for k, v in (request.view_args or {}).items()},
    }
    try:
        record(
            f"api.{(request.endpoint or 'unknown').removeprefix('api.')}",
            request.path[:255],
            details,
            actor_id=user.id if user is not None else None,
            actor_name=user.username if user is not None else "",
        )
    except Exception:
        log.exception("Could not audit API call %s %s", request.method, request.path)
