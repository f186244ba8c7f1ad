"""Append events with a gap-free per-deployment `seq`, then tell listeners through Redis.

The sequence is allocated with `UPDATE deployments SET event_seq = event_seq + n ... RETURNING event_seq`,
which takes the Deployment row lock (PostgreSQL) or the database write lock (SQLite) until the commit, so
concurrent writers get consecutive, unique numbers and a reader never sees seq N+1 committed before N.
Only after the commit is the Redis channel `amsw:<db>:[<queue>:]deployment:<id>` notified (Redis pub/sub
ignores database numbers: the channel names this installation's, and its Celery queue when it has one of
its own, so installations sharing a Redis server never hear each other): the message is the last seq,
with the committed events themselves when the batch is small. Listeners append carried events that follow
what they hold and otherwise query the database, which is the source of truth. Without Redis, the local
web processes' hubs are woken through app.wake instead (they then read the database). Payloads must never
contain secrets; as defence in depth they pass app.masking before they are written.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from flask import Flask, current_app
from sqlalchemy import ClauseElement, insert, inspect, update
from sqlalchemy.orm.attributes import set_committed_value

from app import wake
from app.extensions import db
from app.masking import mask
from app.models import Deployment, Event, utcnow
from app.models.event import event_dict

log = logging.getLogger(__name__)

NOTIFY_EVENTS_MAX = 50  # a notify carries the events themselves up to this many...
NOTIFY_BYTES_MAX = 32_768  # ...and this size; larger batches are read from the database
OUTBOX = "amsw_held_events"  # db.session.info key: {deployment_id: [items]}
_redis_lock = threading.Lock()
_redis_clients: dict[str, Any] = {}


def wake_folder(app: Flask) -> Path:
    """Without Redis: where the web processes' hubs announce their wake-up sockets."""
    return Path(app.config["INSTANCE_DIR"]) / "wake" / "events"


def channel_prefix(app: Flask | None = None) -> str:
    """This installation's pub/sub channels begin so: its Redis database number, and its Celery
    queue when it names one (CELERY_QUEUE: several installations, one Redis)."""
    config = (app or current_app).config
    database = redis.connection.parse_url(config.get("REDIS_URL") or "redis://").get("db", 0)
    queue = config.get("CELERY_QUEUE") or ""
    return f"amsw:{database}:{queue}:deployment:" if queue else f"amsw:{database}:deployment:"


def channel(deployment_id: int) -> str:
    """The Redis pub/sub channel for one deployment."""
    return f"{channel_prefix()}{deployment_id}"


def redis_client(url: str | None = None):
    """A shared Redis client for REDIS_URL (None when Redis is not configured)."""
    url = url or current_app.config.get("REDIS_URL")
    if not url:
        return None
    with _redis_lock:
        client = _redis_clients.get(url)
        if client is None:
            client = _redis_clients[url] = redis.Redis.from_url(url, health_check_interval=30)
        return client


def _pending_columns(deployment_id: int) -> dict[str, Any]:
    """Unflushed column changes of this session's Deployment row, taken over by the caller.

    The sequence UPDATE writes them (it locks that row anyway), so the flush at commit does not
    need a second UPDATE of the same row. They are marked as committed in the session."""
    deployment = db.session.identity_map.get(db.session.identity_key(Deployment, deployment_id))
    if deployment is None:
        return {}
    state = inspect(deployment)
    if not state.modified:
        return {}
    changes = {}
    for attr in state.mapper.column_attrs:
        added = state.attrs[attr.key].history.added
        if added and not isinstance(added[0], ClauseElement):
            changes[attr.key] = added[0]
    for key, value in changes.items():
        set_committed_value(deployment, key, value)
    return changes


def _allocate(deployment_id: int, count: int) -> int:
    """Reserve `count` sequence numbers; returns the last one (row-locked until commit).

    Lock order everywhere: step run, node actions, deployment, then the deployment's step records.
    Not autoflushed, so step records are written at commit, after the deployment row is locked;
    callers change runs and actions with UPDATE statements (which lock them) before publishing."""
    table = Deployment.__table__
    with db.session.no_autoflush:
        values = {
            **_pending_columns(deployment_id),
            "event_seq": table.c.event_seq + count,
            "last_activity_at": utcnow(),
        }
        last = db.session.execute(
            update(table)
            .where(table.c.id == deployment_id)
            .values(values)
            .returning(table.c.event_seq)
        ).scalar_one()
    return last


def add_events(deployment_id: int, items: list[dict[str, Any]]) -> tuple[list[dict], int]:
    """Insert events in the caller's transaction (row-locked seq); returns them as
    Event.as_dict() shapes, and the last seq.

    The caller commits, then calls `notify(deployment_id, last)`. Several calls in one transaction
    get consecutive numbers, since the deployment row stays locked until the commit.
    """
    last = _allocate(deployment_id, len(items))
    first = last - len(items) + 1
    now = utcnow()
    rows = [
        {
            "deployment_id": deployment_id,
            "seq": first + i,
            "kind": item["kind"],
            "payload": mask(item.get("payload") or {}),
            "step_key": item.get("step_key"),
            "node_name": item.get("node"),
            "step_run_id": item.get("step_run_id"),
            "node_action_id": item.get("node_action_id"),
            "actor_id": item.get("actor_id"),
            "created_at": now,
        }
        for i, item in enumerate(items)
    ]
    with db.session.no_autoflush:  # events name rows by id only; the rest is flushed at commit
        db.session.execute(insert(Event.__table__), rows)
    keys = ("seq", "kind", "payload", "step_key", "node_name", "step_run_id", "node_action_id")
    return [event_dict(*(row[k] for k in keys), now) for row in rows], last


@contextmanager
def held_events(
    deployment_id: int, items: list[dict[str, Any] | Callable[[], dict[str, Any]]]
) -> Iterator[None]:
    """Hold `items` for the next publish in this session: they go out ahead of its own items, in the
    same transaction. If nothing inside publishes, they are published (committed) on leaving.
    An item may be a function returning the item, called when the events are written: a run this
    transaction creates has its id only once it is inserted.

    Lets a worker end an action and advance its run in one transaction: node.finished, phase.finished
    and whatever the step does next reach the log together, in that order. On an exception the held
    items are dropped with the caller's transaction."""
    outbox = db.session.info.setdefault(OUTBOX, {})
    outbox[deployment_id] = [*outbox.get(deployment_id, []), *items]
    try:
        yield
    finally:
        left = outbox.pop(deployment_id, None)
    if left:
        publish_many(deployment_id, _resolved(left))


def _resolved(held: list) -> list[dict[str, Any]]:
    """Held items with those given as functions called (see held_events)."""
    return [item() if callable(item) else item for item in held]


def publish_many(
    deployment_id: int, items: list[dict[str, Any]], *, then: Callable[[], Any] | None = None
) -> list[dict]:
    """Insert several events in one transaction (one lock, one commit, one notify).

    Each item: kind, payload and optional step_key, node, step_run_id, node_action_id, actor_id.
    Items held for this deployment (held_events) go first. `then` runs right after the commit and
    before the notify (a worker's task is on its way before browsers are told). Returns the events
    in their Event.as_dict() shape.
    """
    held = db.session.info.get(OUTBOX, {}).pop(deployment_id, None)
    items = [*_resolved(held), *items] if held else items
    if not items:
        if then is not None:
            then()
        return []
    events, last = add_events(deployment_id, items)
    db.session.commit()
    try:
        if then is not None:
            then()
    finally:
        notify(deployment_id, last, events if redis_client() is not None else None)
    return events


def publish(
    deployment_id: int,
    kind: str,
    payload: dict[str, Any] | None = None,
    *,
    step_key: str | None = None,
    node: str | None = None,
    step_run_id: int | None = None,
    node_action_id: int | None = None,
    actor_id: int | None = None,
) -> dict:
    """Append one event and commit (the caller's pending changes are committed with it)."""
    item = {
        "kind": kind,
        "payload": payload or {},
        "step_key": step_key,
        "node": node,
        "step_run_id": step_run_id,
        "node_action_id": node_action_id,
        "actor_id": actor_id,
    }
    return publish_many(deployment_id, [item])[0]


def notify_message(seq: int, events: list[dict] | None = None) -> str:
    """The notify payload: the last seq, or JSON carrying a small batch of events."""
    if events and len(events) <= NOTIFY_EVENTS_MAX:
        carried = json.dumps({"last": seq, "events": events}, separators=(",", ":"), default=str)
        if len(carried) <= NOTIFY_BYTES_MAX:
            return carried
    return str(seq)


def notify(deployment_id: int, seq: int, events: list[dict] | None = None) -> None:
    """Wake SSE listeners; best effort (they also poll), never fails the caller.

    With Redis the message is the last seq, or {"last", "events"} carrying the committed events
    themselves (what the database now holds) when they are few, so listeners need not query for them.
    Without Redis, local hubs get a wake-up naming the deployment and read the database."""
    try:
        client = redis_client()
        if client is not None:
            client.publish(channel(deployment_id), notify_message(seq, events))
        else:
            wake.wake(wake_folder(current_app), str(deployment_id).encode())
    except Exception as exc:  # the event is committed; the notify only wakes its listeners
        log.warning("Redis notify failed for deployment %s: %r", deployment_id, exc)
        log.debug("Redis notify failure", exc_info=True)
