"""The audit trail: append-only, each row chained to the previous one by SHA-256."""

import hashlib
import json
from datetime import datetime

from sqlalchemy import JSON, BigInteger, Integer, String, event
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import UTCDateTime, utcnow

GENESIS = "0" * 64


class AuditRecord(db.Model):
    """Who did what, when, from where; `hash` covers the row and the previous row's hash."""

    __tablename__ = "audit_records"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    seq: Mapped[int] = mapped_column(unique=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(index=True)
    actor_name: Mapped[str] = mapped_column(String(64), default="")
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str] = mapped_column(String(255), default="")
    ip: Mapped[str] = mapped_column(String(64), default="")
    details: Mapped[dict] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64))

    def canonical(self) -> bytes:
        """The bytes the hash covers: sorted-key compact JSON of every field but `hash` and `id`."""
        body = {
            "seq": self.seq,
            "at": self.at.isoformat(timespec="microseconds"),
            "actor_id": self.actor_id,
            "actor_name": self.actor_name,
            "action": self.action,
            "target": self.target,
            "ip": self.ip,
            "details": self.details or {},
            "prev_hash": self.prev_hash,
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()

    def compute_hash(self) -> str:
        """SHA-256 over the canonical JSON."""
        return hashlib.sha256(self.canonical()).hexdigest()


@event.listens_for(AuditRecord, "before_update")
@event.listens_for(AuditRecord, "before_delete")
def _refuse_change(mapper, connection, target) -> None:
    """The application never edits or deletes audit rows."""
    raise PermissionError("Audit records are append-only.")
