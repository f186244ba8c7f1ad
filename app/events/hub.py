"""Per-process fan-out for SSE clients: one Redis listener (or one DB poller) and a shared tail of events.

Every SSE connection waits on the hub instead of holding its own Redis subscription or polling the database
itself. The hub bumps a per-deployment version when Redis says a deployment has new events (or, without
Redis, when the poller sees `deployments.event_seq` move; writers wake the poller through app.wake, so it
reads at once rather than on its next tick). A client captures the version, queries, and
waits for the version to change, so a notify that arrives during the query is never missed. Queries for
new events go through a per-deployment tail cache refreshed by one thread at a time, so 200 clients of
one deployment cost one query per notify, not 200, and none when the notify carried the events (`feed`).

Each waiter has an event of its own, set by its deployment's bumps only: news wakes that deployment's
viewers and no others, and they do not queue for one lock as they wake; the first of them joins the
batch's SSE text and the others take it without the tail's lock. A stream whose browser went away
ends at once, not at its next write: every open stream's socket is in one epoll set (`_Hangups`) that
reports a peer's FIN or reset (EPOLLRDHUP), never its data, and the stream's thread is woken to
return to the server. `forget()` ends the streams opened before it (the
browsers reconnect), so none of them rebuilds a tail from a database that is about to change.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import logging
import select as io_select
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import redis
from flask import Flask, current_app
from sqlalchemy import select

from app import wake
from app.events.publish import channel_prefix, wake_folder
from app.extensions import db
from app.models import Deployment, Event

log = logging.getLogger(__name__)

# Without Redis: the poller reads deployments.event_seq when a writer wakes it, or this often.
POLL_SECONDS = 0.1
TAIL_SIZE = 2000
RELAYS = 2  # a bump's viewers are woken by this many relays at once (see _relay)
REFRESH_SECONDS = 5.0
GLOB_SPECIAL = str.maketrans({c: "\\" + c for c in "*?[]\\"})


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
    memo: tuple | None = None  # ((after, limit, version), fetch_sse's answer) for the last batch


def _relay(viewers) -> None:
    """Wake the viewers an iterator yields, as a relay: set each one's event, and hand the rest
    to the first that is waiting, which passes them on as soon as it wakes (before it writes).

    Waking 250 threads at once has them fight for the GIL: about ten context switches and 100 us
    of CPU per delivery, mostly the kernel's (bench/sse_scale.py). RELAYS relays keep that many
    runnable at a time: about five switches and 65 us, and the last viewer's wait shorter. They
    share one iterator (a list iterator hands each viewer out once)."""
    for watch in viewers:
        with watch.lock:
            handed = watch.waiting and watch.relay is None
            if handed:
                watch.relay = viewers
        watch.event.set()
        if handed:
            return


class Watch:
    """One client's view of a deployment's version counter, and its own wake-up (see _relay)."""

    def __init__(self, hub: Hub, deployment_id: int) -> None:
        self.hub = hub
        self.deployment_id = deployment_id
        self.event = threading.Event()
        self.lock = threading.Lock()  # guards waiting and relay
        self.waiting = False
        self.relay = None  # the viewers this one wakes next, once awake
        self.generation = hub.generation
        self.closed = False  # the peer hung up (see _Hangups)
        self.fd: int | None = None  # its socket's, while in the _Hangups set

    @property
    def ended(self) -> bool:
        """The browser went away, or the hub forgot what it knew when the stream began."""
        return self.closed or self.generation != self.hub.generation

    def version(self) -> int:
        return self.hub.version(self.deployment_id)

    def wait(self, version: int, timeout: float) -> bool:
        """Block until the version differs from `version` (or the stream ended); False on timeout.

        bump() raises the version before it sets the event, and the event is cleared here before
        the version is looked at, so a bump between the two is never missed."""
        deadline = time.monotonic() + timeout
        while True:
            if self.ended or self.version() != version:
                return True
            self.event.clear()
            if self.ended or self.version() != version:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self.lock:
                self.waiting = True
            woke = self.event.wait(remaining)
            with self.lock:
                self.waiting = False
                relay, self.relay = self.relay, None
            if relay is not None:
                _relay(relay)  # first the others, then this viewer's own write
            if not woke:
                return self.ended or self.version() != version


class _Hangups:
    """One epoll set of every open stream's socket, for the peer's FIN or reset only (EPOLLRDHUP,
    EPOLLHUP, EPOLLERR; not EPOLLIN, so a byte a client sends never spins it). One daemon thread
    marks the stream closed and wakes it. Where epoll is missing, streams end at their next write."""

    MASK = getattr(io_select, "EPOLLRDHUP", 0x2000)

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._lock = threading.Lock()
        self._watches: dict[int, Watch] = {}
        self._epoll = None
        self._thread: threading.Thread | None = None

    def add(self, sock, watch: Watch) -> None:
        if not hasattr(io_select, "epoll"):
            return
        try:
            fd = sock.fileno()
        except (AttributeError, OSError):
            return
        if fd < 0:
            return
        with self._lock:
            if self._epoll is None:
                self._epoll = io_select.epoll()
                self._thread = threading.Thread(
                    target=self._run, name="amsw-events-hangups", daemon=True
                )
                self._thread.start()
            try:
                if fd in self._watches:
                    self._epoll.modify(fd, self.MASK)
                else:
                    self._epoll.register(fd, self.MASK)
            except FileExistsError:
                self._epoll.modify(fd, self.MASK)
            except OSError:
                return
            self._watches[fd] = watch
            watch.fd = fd

    def remove(self, watch: Watch) -> None:
        fd = watch.fd
        if fd is None:
            return
        with self._lock:
            if self._watches.get(fd) is watch:
                del self._watches[fd]
                with contextlib.suppress(OSError, ValueError):
                    self._epoll.unregister(fd)

    def _run(self) -> None:
        while True:
            try:
                events = self._epoll.poll(1.0)
            except InterruptedError:
                continue
            if not events:
                continue
            gone: list[Watch] = []
            with self._lock:
                for fd, _mask in events:
                    watch = self._watches.pop(fd, None)
                    with contextlib.suppress(OSError, ValueError):
                        self._epoll.unregister(fd)
                    if watch is not None:
                        watch.closed = True
                        gone.append(watch)
            for watch in gone:
                watch.event.set()


class Hub:
    """See module docstring; one per Flask app (app.extensions['amsw_events_hub'])."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards _watched and _viewers
        self._versions: dict[int, int] = {}
        self._seen: dict[int, int] = {}  # without Redis: each deployment's last polled event_seq
        self._watched: Counter[int] = Counter()
        self._viewers: dict[int, set[Watch]] = {}
        self.generation = 0
        self._hangups = _Hangups(self)
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
        with self._lock:
            ids = [deployment_id] if deployment_id is not None else list(self._watched)
            for dep in ids:
                self._versions[dep] = self._versions.get(dep, 0) + 1
            relays = [iter(list(self._viewers.get(dep, ()))) for dep in ids]
        for viewers in relays:
            for _ in range(RELAYS):
                _relay(viewers)

    def streams(self) -> int:
        """How many streams this process serves now."""
        with self._lock:
            return sum(self._watched.values())

    @contextlib.contextmanager
    def watching(self, deployment_id: int, sock=None):
        """Register a client for the duration of its stream; `sock` (the connection's socket, if
        the server tells it) ends the stream as soon as the peer hangs up."""
        watch = Watch(self, deployment_id)
        with self._lock:
            self._watched[deployment_id] += 1
            self._viewers.setdefault(deployment_id, set()).add(watch)
        if sock is not None:
            self._hangups.add(sock, watch)
        try:
            yield watch
        finally:
            self._hangups.remove(watch)
            with self._lock:
                self._watched[deployment_id] -= 1
                self._viewers[deployment_id].discard(watch)
                if self._watched[deployment_id] <= 0:
                    del self._watched[deployment_id]
                    del self._viewers[deployment_id]

    def forget(self) -> None:
        """Drop every cached tail, so the next read of each deployment starts from the database.
        For a database emptied or restored beneath a running app, where a deployment id (and its
        event numbers) can start again lower than what the tail remembers. Streams open now end
        (their browsers reconnect and resume from the database as it then is) rather than read
        again, so none of them fills a tail from what the database held before."""
        with self._tails_lock:
            self.generation += 1
            self._tails.clear()
        with self._lock:
            self._seen.clear()  # the poller's last sequence numbers: they may come again, lower
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
                pubsub.psubscribe(channel_prefix(self.app).translate(GLOB_SPECIAL) + "*")
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
        self._ready.set()
        interval = float(self.app.config.get("SSE_POLL_SECONDS", POLL_SECONDS))
        while not self._stop.is_set():
            listener.wait(interval)
            with self._lock:
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
            with self._lock:
                news = [dep for dep, seq in rows if self._seen.get(dep) != seq]
                self._seen.update(rows)
            for dep in news:
                self.bump(dep)

    # ------------------------------------------------------------------ reading events
    def fetch(self, deployment_id: int, after: int, limit: int) -> list[dict]:
        """Events with seq > after, oldest first (from the shared tail when it covers them)."""
        return [item for item, _ in self._fetch(deployment_id, after, limit)]

    def fetch_sse(self, deployment_id: int, after: int, limit: int) -> tuple[int, str, int]:
        """(last seq, SSE text, count) for events with seq > after.

        Viewers of one deployment mostly ask for the same `after` (the batch every one of them was
        just woken for): the text is joined once per batch, not once per viewer."""
        tail = self._tail(deployment_id)
        memo = tail.memo  # without the lock: one viewer took it, the others read its answer
        if (
            memo is not None
            and memo[0] == (after, limit, self.version(deployment_id))
            and time.monotonic() - tail.refreshed < REFRESH_SECONDS
        ):
            return memo[1]
        with tail.lock:
            self._refresh(deployment_id, tail)
            items = self._from_tail(tail, after, limit)
            if items is not None:
                result = _sse_result(after, items)
                # Valid while the version stays the one the tail is current for.
                tail.memo = ((after, limit, tail.version), result)
                return result
        return _sse_result(
            after, [(e, sse_text(e)) for e in query_events(deployment_id, after, limit)]
        )

    def _fetch(self, deployment_id: int, after: int, limit: int) -> list[tuple[dict, str]]:
        tail = self._tail(deployment_id)
        with tail.lock:
            self._refresh(deployment_id, tail)
            items = self._from_tail(tail, after, limit)
            if items is not None:
                return items
        return [(e, sse_text(e)) for e in query_events(deployment_id, after, limit)]

    @staticmethod
    def _from_tail(tail: _Tail, after: int, limit: int) -> list[tuple[dict, str]] | None:
        """What the (refreshed) tail says follows `after`; None when it does not reach back so far."""
        if tail.max_seq is not None and after >= tail.max_seq:
            return []
        if tail.seqs and after >= tail.seqs[0] - 1:
            start = bisect.bisect_right(tail.seqs, after)
            return tail.items[start : start + limit]
        return None

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
            events = query_events(deployment_id, tail.max_seq, TAIL_SIZE)
            if len(events) == TAIL_SIZE:
                # More arrived than one read brings (a big batch, announced by its last seq only):
                # what follows it is unknown, and the tail must never claim to be current short of
                # the database (`after >= max_seq` answers "nothing new"). Start again at the end.
                tail.seqs.clear()
                tail.items.clear()
                tail.max_seq = _current_seq(deployment_id)
                events = query_events(deployment_id, max(0, tail.max_seq - TAIL_SIZE), TAIL_SIZE)
            for event in events:
                tail.seqs.append(event["seq"])
                tail.items.append((event, sse_text(event)))
                tail.max_seq = event["seq"]
            if len(tail.seqs) > TAIL_SIZE:
                del tail.seqs[:-TAIL_SIZE], tail.items[:-TAIL_SIZE]
        tail.version = version
        tail.refreshed = time.monotonic()


def _sse_result(after: int, items: list[tuple[dict, str]]) -> tuple[int, str, int]:
    if not items:
        return after, "", 0
    return items[-1][0]["seq"], "".join(text for _, text in items), len(items)


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
