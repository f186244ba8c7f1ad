"""API: a deployment's events, paginated by seq, and the same SSE stream the screens use."""

from __future__ import annotations

import functools

from flask import Response, current_app, request, stream_with_context
from marshmallow import RAISE

from app.api.core import api_token, bp, errors_doc, needs
from app.api.deployments import DEPLOYMENT_ID, load_deployment
from app.api.schemas import MAX_INT, EventArgs, EventPage, StreamArgs
from app.events.hub import get_hub, query_events
from app.events.views import _generate
from app.extensions import db
from app.models import ApiToken

SSE_DOC = {
    "200": {
        "description": "text/event-stream: `id:` is the event seq, `data:` an Event as JSON",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


@bp.get(f"/deployments/{DEPLOYMENT_ID}/events")
@bp.arguments(EventArgs, location="query", unknown=RAISE)
@bp.response(200, EventPage)
@errors_doc(401, 403, 404, 422)
@bp.doc(tags=["events"], summary="Events with seq > after, oldest first (cursor: next_after)")
@needs("view")
def events(args, deployment_id: int):
    load_deployment(deployment_id)
    rows = query_events(deployment_id, args["after"], args["limit"])
    last = rows[-1]["seq"] if rows else args["after"]
    return {"events": rows, "next_after": last, "more": len(rows) == args["limit"]}


@bp.get(f"/deployments/{DEPLOYMENT_ID}/events/stream")
@bp.arguments(StreamArgs, location="query", unknown=RAISE)
@errors_doc(401, 403, 404, 422)
@bp.doc(
    tags=["events"],
    summary="Live Server-Sent Events; resumes after Last-Event-ID or ?after",
    responses=SSE_DOC,
)
@needs("view")
def stream(args, deployment_id: int):
    load_deployment(deployment_id)
    db.session.close()
    after = _last_event_id(args["after"])
    keepalive = float(current_app.config.get("SSE_KEEPALIVE_SECONDS", 15))
    hub = get_hub()
    hub.ensure_started(current_app._get_current_object())
    allowed = functools.partial(_token_valid, api_token().id)
    body = stream_with_context(_generate(hub, deployment_id, after, keepalive, allowed))
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return Response(body, mimetype="text/event-stream", headers=headers)


def _token_valid(token_id: int) -> bool:
    """For an API stream: its token is not revoked and its user is still enabled and may view."""
    token = db.session.get(ApiToken, token_id)
    return token is not None and token.active and token.user.is_active and token.user.can("view")


def _last_event_id(default: int) -> int:
    raw = request.headers.get("Last-Event-ID", "")
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 10):
        return default
    return min(int(raw), MAX_INT)
