"""Appending to and verifying the hash-chained audit trail.

`record()` commits its own short transaction, so call it after the change it describes was
committed. On PostgreSQL appends queue on a transaction-level advisory lock taken before the head
is read, so any number of web processes append one after the other and none gives up; within a
process, a lock does the same (on SQLite too). Underneath, the unique `prev_hash` (and `seq`) keep
the chain from forking: two writers that read the same head (two processes on SQLite) collide on
insert and the loser retries on the new head.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from flask import g, has_request_context, request
from flask_login import current_user
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import AuditRecord, utcnow
from app.models.audit import GENESIS

log = logging.getLogger(__name__)
RETRIES = 8
# This process's appenders one at a time (a web process's request threads): they never collide,
# on SQLite too, which has no lock to queue on before the head is read.
_APPENDING = threading.Lock()
APPEND_LOCK_KEY = 0x414D5357_41554454 & 0x7FFFFFFFFFFFFFFF  # "AMSWAUDT", a bigint key


def _queue_for_the_head() -> None:
    """Wait for this transaction's turn to append (PostgreSQL); released by its commit or rollback."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": APPEND_LOCK_KEY})


def _head() -> tuple[int, str]:
    """(seq, hash) of the newest record, or the genesis values."""
    row = db.session.execute(
        select(AuditRecord.seq, AuditRecord.hash).order_by(AuditRecord.seq.desc()).limit(1)
    ).first()
    return (row.seq, row.hash) if row else (0, GENESIS)


def _who() -> tuple[int | None, str, str]:
    """(actor id, actor name, client address) from the request, when there is one."""
    if not has_request_context():
        return None, "system", ""
    ip = request.remote_addr or ""
    if (actor := g.get("amsw_actor")) is not None:  # noted before the view's commits expired it
        return actor[0], actor[1], ip
    if current_user and current_user.is_authenticated:
        return current_user.id, current_user.username, ip
    return None, "", ip


def record(action: str, target: str = "", details: dict | None = None, **who) -> AuditRecord:
    """Append one record (actor from the request unless actor_id/actor_name are given)."""
    actor_id, actor_name, ip = _who()
    actor_id = who.get("actor_id", actor_id)
    actor_name = who.get("actor_name", actor_name)
    for _ in range(RETRIES):
        with _APPENDING:
            row = _append(action, target, details, actor_id, actor_name, ip)
        if row is not None:
            return row
    raise RuntimeError("Could not append to the audit trail (too much contention).")


def _append(action, target, details, actor_id, actor_name, ip) -> AuditRecord | None:
    """One try at appending on the newest head, committed; None when another writer's record
    took that place first (another process on SQLite, where only the unique keys stop it)."""
    _queue_for_the_head()
    seq, prev = _head()
    row = AuditRecord(
        seq=seq + 1,
        at=utcnow(),
        actor_id=actor_id,
        actor_name=actor_name or "",
        action=action,
        target=target[:255],
        ip=ip,
        details=details or {},
        prev_hash=prev,
    )
    row.hash = row.compute_hash()
    db.session.add(row)
    try:
        db.session.commit()
        return row
    except IntegrityError:
        db.session.rollback()
        return None


@dataclass(frozen=True)
class Broken:
    """Where the chain first fails and why."""

    id: int
    seq: int
    reason: str


def verify() -> tuple[int, list[Broken]]:
    """Walk the chain in order; returns (records checked, problems found)."""
    problems: list[Broken] = []
    prev, expected_seq, count = GENESIS, 1, 0
    rows = db.session.execute(select(AuditRecord).order_by(AuditRecord.seq)).scalars()
    for row in rows.yield_per(1000):
        count += 1
        if row.seq != expected_seq:
            problems.append(Broken(row.id, row.seq, f"sequence gap: expected {expected_seq}"))
        if row.prev_hash != prev:
            problems.append(Broken(row.id, row.seq, "prev_hash does not match the previous row"))
        if row.compute_hash() != row.hash:
            problems.append(Broken(row.id, row.seq, "content does not match its hash"))
        prev, expected_seq = row.hash, row.seq + 1
    return count, problems


def latest(page: int, per_page: int = 50) -> list[AuditRecord]:
    """Newest records first, for the read-only audit page."""
    query = select(AuditRecord).order_by(AuditRecord.seq.desc())
    return list(db.session.scalars(query.limit(per_page).offset((page - 1) * per_page)))
