"""A deployment: one run of a guide against a set of cluster nodes."""

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import UTCDateTime, utcnow

DEPLOYMENT_STATUSES = ("draft", "in_progress", "paused", "completed", "aborted")
STEP_STATUSES = ("not_started", "in_progress", "needs_attention", "done", "skipped")


class Deployment(db.Model):
    """The aggregate root; its guide version is fixed when it starts."""

    __tablename__ = "deployments"
    __table_args__ = (Index("ix_deployments_status_activity", "status", "last_activity_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    domain_fqdn: Mapped[str] = mapped_column(String(255))
    guide_key: Mapped[str] = mapped_column(String(64))
    guide_version: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="draft", index=True)
    current_step: Mapped[str] = mapped_column(String(64))
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    last_activity_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    event_seq: Mapped[int] = mapped_column(default=0)
    # PEM certificates of the internal CA(s) that issued the nodes' WinRM HTTPS certificates
    # (validated by app.validators.ca_bundle; public data, not a secret). None: system CAs.
    ca_bundle: Mapped[str | None] = mapped_column(Text)
    # Kerberos: the realm's KDCs, "host:port" comma separated (app.validators.kdc_list); None:
    # DNS SRV records (_kerberos._tcp.<domain>) find them.
    kerberos_kdcs: Mapped[str | None] = mapped_column(String(500))

    created_by = relationship("User", lazy="joined")
    nodes: Mapped[list["Node"]] = relationship(
        back_populates="deployment", order_by="Node.position", cascade="all, delete-orphan"
    )
    steps: Mapped[list["DeploymentStep"]] = relationship(
        back_populates="deployment", order_by="DeploymentStep.id", cascade="all, delete-orphan"
    )

    def step(self, key: str) -> "DeploymentStep | None":
        """The per-step record for a step key, if any."""
        return next((s for s in self.steps if s.step_key == key), None)

    @property
    def unvalidated_nodes(self) -> list["Node"]:
        """HTTPS nodes whose certificate is not validated: encrypted, but not authenticated."""
        return [n for n in self.nodes if n.transport == "https" and not n.cert_validation]

    @property
    def active_nodes(self) -> list["Node"]:
        """Nodes not excluded by the operator."""
        return [n for n in self.nodes if not n.excluded]


class Node(db.Model):
    """A cluster node: its AD computer name and how to reach it over WinRM."""

    __tablename__ = "nodes"
    __table_args__ = (UniqueConstraint("deployment_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(default=0)
    name: Mapped[str] = mapped_column(String(15))
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(default=5985)
    transport: Mapped[str] = mapped_column(String(5), default="http")
    auth: Mapped[str] = mapped_column(String(16), default="negotiate")
    cert_validation: Mapped[bool] = mapped_column(default=True)
    excluded: Mapped[bool] = mapped_column(default=False)
    exclude_reason: Mapped[str | None] = mapped_column(Text)

    deployment: Mapped[Deployment] = relationship(back_populates="nodes")


class DeploymentStep(db.Model):
    """Where one step of one deployment stands, and the inputs entered for it (no secrets)."""

    __tablename__ = "deployment_steps"
    __table_args__ = (UniqueConstraint("deployment_id", "step_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    step_key: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="not_started")
    inputs: Mapped[dict] = mapped_column(JSON, default=dict)
    skip_reason: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    deployment: Mapped[Deployment] = relationship(back_populates="steps")
