"""The append-only event log the browser replays from."""

from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import UTCDateTime, utcnow


class Event(db.Model):
    """Something that happened in a deployment; `seq` increases per deployment without gaps."""

    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("deployment_id", "seq"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column()
    kind: Mapped[str] = mapped_column(String(48))
    step_key: Mapped[str | None] = mapped_column(String(64))
    node_name: Mapped[str | None] = mapped_column(String(15))
    step_run_id: Mapped[int | None] = mapped_column()
    node_action_id: Mapped[int | None] = mapped_column()
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def as_dict(self) -> dict:
        """The shape sent to browsers and exports."""
        return {
            "seq": self.seq,
            "kind": self.kind,
            "step": self.step_key,
            "node": self.node_name,
            "step_run": self.step_run_id,
            "action": self.node_action_id,
            "payload": self.payload,
            "at": self.created_at.isoformat(),
        }
