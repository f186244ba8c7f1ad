"""Server-Sent Events for a deployment: replay from the last id the browser saw, then stream live.

`GET /deployments/<id>/events` (text/event-stream, `id:` = seq, `data:` = Event.as_dict() JSON) resumes after
the `Last-Event-ID` header or `?after=`. Live updates come from a per-process hub (hub.py): with Redis one
listener thread per process is subscribed before any replay starts, so a notify that races with the replay
only causes one extra query (no loss, no duplicates: every send is "seq > last sent" from the database);
without Redis the hub reads the database when a writer wakes it (app.wake) and every SSE_POLL_SECONDS
(0.1 s) in any case. A comment line keeps idle connections open;
before each one the stream checks that its viewer may still watch (account enabled, same password, role), and
ends if not: a disabled account or a reset password stops an open stream within one keep-alive period.
A stream whose browser went away ends at once (the hub watches its socket for the peer's hang-up), so its
server thread is free again. With a threaded server, streams may take at most SSE_MAX_STREAMS of a
process's threads (app/gunicorn_config.py sets it below the thread count): beyond, a new stream gets 503
and the page reconnects later, so pages never queue behind streams.
`GET /deployments/<id>/events.json?after=N&limit=M` is the same log, paginated, for first render/fallback.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

from flask import Blueprint, Response, abort, current_app, jsonify, request, stream_with_context
from flask_login import current_user

from app.auth.decorators import requires
from app.auth.views import load_user
from app.events.hub import get_hub, query_events
from app.extensions import db
from app.models import Deployment

bp = Blueprint("events", __name__, url_prefix="/deployments/<int:deployment_id>")

MAX_PAGE = 1000
MAX_SEQ = 2**31 - 1  # events.seq is a 32-bit integer column


def _check_access(deployment_id: int) -> None:
    if not current_user.can("view"):
        abort(403)
    if db.session.get(Deployment, deployment_id) is None:
        abort(404)
    db.session.close()


def _after() -> int:
    raw = request.headers.get("Last-Event-ID") or request.args.get("after") or "0"
    try:
        return min(max(0, int(raw)), MAX_SEQ)  # beyond the column's range: nothing after it
    except ValueError:
        return 0


@bp.get("/events.json")
@requires("view")
def history(deployment_id: int):
    """A page of events after `after`, oldest first, with the cursor to ask for next."""
    _check_access(deployment_id)
    limit = min(max(request.args.get("limit", 200, type=int), 1), MAX_PAGE)
    rows = query_events(deployment_id, _after(), limit)
    last = rows[-1]["seq"] if rows else _after()
    return jsonify(events=rows, next_after=last, more=len(rows) == limit)


@bp.get("/events")
@requires("view")
def stream(deployment_id: int):
    """The live stream (see module docstring)."""
    _check_access(deployment_id)
    after = _after()
    keepalive = float(current_app.config.get("SSE_KEEPALIVE_SECONDS", 15))
    hub = get_hub()
    cap = current_app.config.get("SSE_MAX_STREAMS") or 0
    if cap and hub.streams() >= cap:
        text = "This server process serves as many live streams as it may; retry shortly.\n"
        return Response(text, 503, {"Retry-After": "5"}, mimetype="text/plain")
    hub.ensure_started(current_app._get_current_object())
    allowed = functools.partial(_session_valid, current_user.get_id())
    body = stream_with_context(_generate(hub, deployment_id, after, keepalive, allowed))
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"}
    return Response(body, mimetype="text/event-stream", headers=headers)


def _session_valid(session_id: str) -> bool:
    """For a browser's stream: the session (User.get_id) would still sign its user in, and the
    user may still view."""
    user = load_user(session_id)
    return user is not None and user.can("view")


def _socket():
    """The connection's socket, where the server tells it (gunicorn, werkzeug): the hub ends the
    stream when the peer hangs up."""
    environ = request.environ
    return environ.get("gunicorn.socket") or environ.get("werkzeug.socket")


def _generate(hub, deployment_id: int, last: int, keepalive: float, allowed: Callable[[], bool]):
    """The stream's body; `allowed` (which may read the database: it reads afresh, the session is
    closed after it) is asked before each keep-alive and ends the stream when False."""
    yield "retry: 2000\n\n"
    with hub.watching(deployment_id, _socket()) as watch:
        idle_since = time.monotonic()
        while not watch.ended:
            version = watch.version()
            last, text, count = hub.fetch_sse(deployment_id, last, MAX_PAGE)
            if count:
                yield text
                idle_since = time.monotonic()
                if count == MAX_PAGE:
                    continue
            remaining = keepalive - (time.monotonic() - idle_since)
            woke = remaining > 0 and watch.wait(version, remaining)
            if watch.ended:
                return
            if not woke and time.monotonic() - idle_since >= keepalive:
                try:
                    if not allowed():
                        return
                finally:
                    db.session.close()
                yield ": keep-alive\n\n"
                idle_since = time.monotonic()
