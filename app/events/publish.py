"""Append events with a gap-free per-deployment `seq`, then tell listeners through Redis.

The sequence is allocated with `UPDATE deployments SET event_seq = event_seq + n ... RETURNING event_seq`,
which takes the Deployment row lock (PostgreSQL) or the database write lock (SQLite) until the commit, so
concurrent writers get consecutive, unique numbers and a reader never sees seq N+1 committed before N.
Only after the commit is the Redis channel `amsw:deployment:<id>` notified: the message is the last seq,
with the committed events themselves when the batch is small. Listeners append carried events that follow
what they hold and otherwise query the database, which is the source of truth. Payloads must never contain secrets.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from flask import current_app
from sqlalchemy import update

from app.extensions import db
from app.models import Deployment, Event, utcnow

log = logging.getLogger(__name__)

NOTIFY_EVENTS_MAX = 50  # a notify carries the events themselves up to this many...
NOTIFY_BYTES_MAX = 32_768  # ...and this size; larger batches are read from the database
OUTBOX = "amsw_held_events"  # db.session.info key: {deployment_id: [items]}
_redis_lock = threading.Lock()
_redis_clients: dict[str, Any] = {}


def channel(deployment_id: int) -> str:
    """The Redis pub/sub channel for one deployment."""
    return f"amsw:deployment:{deployment_id}"


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


def _allocate(deployment_id: int, count: int) -> int:
    """Reserve `count` sequence numbers; returns the last one (row-locked until commit)."""
    last = db.session.execute(
        update(Deployment)
        .where(Deployment.id == deployment_id)
        .values(event_seq=Deployment.event_seq + count, last_activity_at=utcnow())
        .returning(Deployment.event_seq)
        .execution_options(synchronize_session=False)  # nothing reads the counter in-process
    ).scalar_one()
    return last


def add_events(deployment_id: int, items: list[dict[str, Any]]) -> tuple[list[Event], int]:
    """Insert events in the caller's transaction (row-locked seq); returns them and the last seq.

    The caller commits, then calls `notify(deployment_id, last)`. Several calls in one transaction
    get consecutive numbers, since the deployment row stays locked until the commit.
    """
    last = _allocate(deployment_id, len(items))
    first = last - len(items) + 1
    now = utcnow()
    events = [
        Event(
            deployment_id=deployment_id,
            seq=first + i,
            kind=item["kind"],
            payload=item.get("payload") or {},
            step_key=item.get("step_key"),
            node_name=item.get("node"),
            step_run_id=item.get("step_run_id"),
            node_action_id=item.get("node_action_id"),
            actor_id=item.get("actor_id"),
            created_at=now,
        )
        for i, item in enumerate(items)
    ]
    db.session.add_all(events)
    return events, last


@contextmanager
def held_events(deployment_id: int, items: list[dict[str, Any]]) -> Iterator[None]:
    """Hold `items` for the next publish in this session: they go out ahead of its own items, in the
    same transaction. If nothing inside publishes, they are published (committed) on leaving.

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
        publish_many(deployment_id, left)


def publish_many(deployment_id: int, items: list[dict[str, Any]]) -> list[Event]:
    """Insert several events in one transaction (one lock, one commit, one notify).

    Each item: kind, payload and optional step_key, node, step_run_id, node_action_id, actor_id.
    Items held for this deployment (held_events) go first.
    """
    held = db.session.info.get(OUTBOX, {}).pop(deployment_id, None)
    items = [*held, *items] if held else items
    if not items:
        return []
    events, last = add_events(deployment_id, items)
    # The notify's copy, read before the commit expires the rows; no Redis, no notify.
    wire = [event.as_dict() for event in events] if redis_client() is not None else None
    db.session.commit()
    notify(deployment_id, last, wire)
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
) -> Event:
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

    The message is the last seq, or {"last", "events"} carrying the committed events themselves
    (what the database now holds) when they are few, so listeners need not query for them."""
    try:
        client = redis_client()
        if client is not None:
            client.publish(channel(deployment_id), notify_message(seq, events))
    except Exception:
        log.warning("Redis notify failed for deployment %s", deployment_id, exc_info=True)
