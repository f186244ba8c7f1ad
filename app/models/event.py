"""The append-only event log the browser replays from."""

from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.masking import mask
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
        return event_dict(
            self.seq,
            self.kind,
            self.payload,
            self.step_key,
            self.node_name,
            self.step_run_id,
            self.node_action_id,
            self.created_at,
        )


def event_dict(
    seq: int,
    kind: str,
    payload: dict,
    step_key: str | None,
    node_name: str | None,
    step_run_id: int | None,
    node_action_id: int | None,
    created_at: datetime,
) -> dict:
    """An event in the shape sent to browsers and exports."""
    return {
        "seq": seq,
        "kind": kind,
        "step": step_key,
        "node": node_name,
        "step_run": step_run_id,
        "action": node_action_id,
        "payload": mask(payload),  # rows written before publish masked them, too
        "at": created_at.isoformat(),
    }
