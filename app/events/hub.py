"""Per-process fan-out for SSE clients: one Redis listener (or one DB poller) and a shared tail of events.

Every SSE connection waits on the hub instead of holding its own Redis subscription or polling the database
itself. The hub bumps a per-deployment version when Redis says a deployment has new events (or, without
Redis, when the poller sees `deployments.event_seq` move; writers wake the poller through app.wake, so it
reads at once rather than on its next tick). A client captures the version, queries, and
waits for the version to change, so a notify that arrives during the query is never missed. Queries for
new events go through a per-deployment tail cache refreshed by one thread at a time, so 200 clients of
one deployment cost one query per notify, not 200, and none when the notify carried the events (`feed`).
"""

from __future__ import annotations

import bisect
import contextlib
import json
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import redis
from flask import Flask, current_app
from sqlalchemy import select

from app import wake
from app.events.publish import wake_folder
from app.extensions import db
from app.models import Deployment, Event

log = logging.getLogger(__name__)

# Without Redis: the poller reads deployments.event_seq when a writer wakes it, or this often.
POLL_SECONDS = 0.1
TAIL_SIZE = 2000
REFRESH_SECONDS = 5.0
PATTERN = "amsw:deployment:*"


def sse_text(event: dict) -> str:
    """One SSE message: id = seq, data = the event as JSON on one line."""
    return f"id: {event['seq']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n"


@dataclass
class _Tail:
    lock: threading.Lock = field(default_factory=threading.Lock)
    seqs: list[int] = field(default_factory=list)
    items: list[tuple[dict, str]] = field(default_factory=list)
    max_seq: int | None = None
    version: int = -1
    refreshed: float = 0.0


class Watch:
    """One client's view of a deployment's version counter."""

    def __init__(self, hub: Hub, deployment_id: int) -> None:
        self.hub = hub
        self.deployment_id = deployment_id

    def version(self) -> int:
        return self.hub.version(self.deployment_id)

    def wait(self, version: int, timeout: float) -> bool:
        """Block until the version differs from `version`; False on timeout."""
        with self.hub.cond:
            return self.hub.cond.wait_for(
                lambda: self.hub.version(self.deployment_id) != version, timeout
            )


class Hub:
    """See module docstring; one per Flask app (app.extensions['amsw_events_hub'])."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self._versions: dict[int, int] = {}
        self._watched: Counter[int] = Counter()
        self._tails: dict[int, _Tail] = {}
        self._tails_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listener: wake.Listener | None = None  # the DB poller's, without Redis
        self.app: Flask | None = None

    # ------------------------------------------------------------------ versions
    def version(self, deployment_id: int) -> int:
        return self._versions.get(deployment_id, 0)

    def bump(self, deployment_id: int | None = None) -> None:
        """Wake waiters of one deployment (or all, after a lost Redis connection)."""
        with self.cond:
            ids = [deployment_id] if deployment_id is not None else list(self._watched)
            for dep in ids:
                self._versions[dep] = self._versions.get(dep, 0) + 1
            self.cond.notify_all()

    @contextlib.contextmanager
    def watching(self, deployment_id: int):
        """Register a client for the duration of its stream."""
        with self.cond:
            self._watched[deployment_id] += 1
        try:
            yield Watch(self, deployment_id)
        finally:
            with self.cond:
                self._watched[deployment_id] -= 1
                if self._watched[deployment_id] <= 0:
                    del self._watched[deployment_id]

    def forget(self) -> None:
        """Drop every cached tail, so the next read of each deployment starts from the database.
        For a database emptied or restored beneath a running app, where a deployment id (and its
        event numbers) can start again lower than what the tail remembers."""
        with self._tails_lock:
            self._tails.clear()
        self.bump()

    # ------------------------------------------------------------------ background listener
    def ensure_started(self, app: Flask) -> None:
        """Start the Redis listener or DB poller once; with Redis, wait until subscribed."""
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self.app = app
                target = self._listen_redis if app.config.get("REDIS_URL") else self._poll_db
                self._ready.clear()
                self._thread = threading.Thread(target=target, name="amsw-events-hub", daemon=True)
                self._thread.start()
        if not self._ready.wait(10):
            log.warning("Events hub not ready after 10 s; clients fall back to periodic refresh")

    def stop(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.interrupt()

    def _listen_redis(self) -> None:
        while not self._stop.is_set():
            try:
                client = redis.Redis.from_url(self.app.config["REDIS_URL"])
                pubsub = client.pubsub(ignore_subscribe_messages=False)
                pubsub.psubscribe(PATTERN)
                self._pump(pubsub)
            except Exception:
                log.warning("Events hub lost Redis; reconnecting", exc_info=True)
                self._ready.clear()
                self.bump()
                time.sleep(0.5)

    def _pump(self, pubsub) -> None:
        while not self._stop.is_set():
            message = pubsub.get_message(timeout=1.0)
            if message is None:
                continue
            if message["type"] == "psubscribe":
                self._ready.set()
                self.bump()
            elif message["type"] == "pmessage":
                channel = message["channel"].decode()
                with contextlib.suppress(ValueError):
                    deployment_id = int(channel.rsplit(":", 1)[1])
                    self.feed(deployment_id, message["data"])
                    self.bump(deployment_id)

    def _poll_db(self) -> None:
        self._listener = listener = wake.Listener(wake_folder(self.app))
        try:
            self._poll_db_until_stopped(listener)
        finally:
            self._listener = None
            listener.close()

    def _poll_db_until_stopped(self, listener: wake.Listener) -> None:
        seen: dict[int, int] = {}
        self._ready.set()
        interval = float(self.app.config.get("SSE_POLL_SECONDS", POLL_SECONDS))
        while not self._stop.is_set():
            listener.wait(interval)
            with self.cond:
                ids = list(self._watched)
            if not ids:
                continue
            try:
                with self.app.app_context():
                    rows = db.session.execute(
                        select(Deployment.id, Deployment.event_seq).where(Deployment.id.in_(ids))
                    ).all()
            except Exception:
                log.warning("Events hub poll failed", exc_info=True)
                continue
            for dep, seq in rows:
                if seen.get(dep) != seq:
                    seen[dep] = seq
                    self.bump(dep)

    # ------------------------------------------------------------------ reading events
    def fetch(self, deployment_id: int, after: int, limit: int) -> list[dict]:
        """Events with seq > after, oldest first (from the shared tail when it covers them)."""
        return [item for item, _ in self._fetch(deployment_id, after, limit)]

    def fetch_sse(self, deployment_id: int, after: int, limit: int) -> tuple[int, str, int]:
        """(last seq, SSE text, count) for events with seq > after."""
        items = self._fetch(deployment_id, after, limit)
        if not items:
            return after, "", 0
        return items[-1][0]["seq"], "".join(text for _, text in items), len(items)

    def _fetch(self, deployment_id: int, after: int, limit: int) -> list[tuple[dict, str]]:
        tail = self._tail(deployment_id)
        with tail.lock:
            self._refresh(deployment_id, tail)
            if tail.max_seq is not None and after >= tail.max_seq:
                return []
            if tail.seqs and after >= tail.seqs[0] - 1:
                start = bisect.bisect_right(tail.seqs, after)
                return tail.items[start : start + limit]
        return [(e, sse_text(e)) for e in query_events(deployment_id, after, limit)]

    def feed(self, deployment_id: int, data: bytes | str) -> None:
        """Append events a notify carried, if they follow the tail exactly (else the next fetch
        queries the database as usual). The tail is then current for the version bump() is about
        to set, so clients woken by it read from memory."""
        if not isinstance(data, (bytes, str)) or data[:1] not in (b"{", "{"):
            return
        with self._tails_lock:
            tail = self._tails.get(deployment_id)
        if tail is None:
            return
        try:
            events = json.loads(data)["events"]
        except (ValueError, KeyError, TypeError):
            return
        with tail.lock:
            if not events or tail.max_seq is None or events[0].get("seq") != tail.max_seq + 1:
                return
            for event in events:
                tail.seqs.append(event["seq"])
                tail.items.append((event, sse_text(event)))
            tail.max_seq = tail.seqs[-1]
            if len(tail.seqs) > TAIL_SIZE:
                del tail.seqs[:-TAIL_SIZE], tail.items[:-TAIL_SIZE]
            tail.version = self.version(deployment_id) + 1
            tail.refreshed = time.monotonic()

    def _tail(self, deployment_id: int) -> _Tail:
        with self._tails_lock:
            return self._tails.setdefault(deployment_id, _Tail())

    def _refresh(self, deployment_id: int, tail: _Tail) -> None:
        version = self.version(deployment_id)
        fresh = time.monotonic() - tail.refreshed < REFRESH_SECONDS
        if tail.version == version and fresh and tail.max_seq is not None:
            return
        if tail.max_seq is None:
            tail.max_seq = _current_seq(deployment_id)
        else:
            for event in query_events(deployment_id, tail.max_seq, TAIL_SIZE):
                tail.seqs.append(event["seq"])
                tail.items.append((event, sse_text(event)))
                tail.max_seq = event["seq"]
            if len(tail.seqs) > TAIL_SIZE:
                del tail.seqs[:-TAIL_SIZE], tail.items[:-TAIL_SIZE]
        tail.version = version
        tail.refreshed = time.monotonic()


def query_events(deployment_id: int, after: int, limit: int) -> list[dict]:
    """Events with seq > after straight from the database, oldest first."""
    try:
        rows = db.session.scalars(
            select(Event)
            .where(Event.deployment_id == deployment_id, Event.seq > after)
            .order_by(Event.seq)
            .limit(limit)
        ).all()
        return [r.as_dict() for r in rows]
    finally:
        db.session.close()


def _current_seq(deployment_id: int) -> int:
    try:
        return (
            db.session.scalar(select(Deployment.event_seq).where(Deployment.id == deployment_id))
            or 0
        )
    finally:
        db.session.close()


def get_hub() -> Hub:
    """The hub of the current app."""
    return current_app.extensions.setdefault("amsw_events_hub", Hub())
