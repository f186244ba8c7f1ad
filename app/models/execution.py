"""Runs of steps, the remote actions inside them, and credentials held while work is pending."""

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from app.extensions import db
from app.models.base import UTCDateTime, utcnow
from app.steps import RunOptions

RUN_STATUSES = (
    "queued",
    "running",
    "succeeded",
    "passed",
    "failed",
    "interrupted",
    "cancelled",
)
ACTION_STATUSES = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "interrupted",
    "cancelled",
)


class RunOptionsType(TypeDecorator):
    """StepRun.options: a RunOptions in Python, its set fields as a JSON object in the database."""

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return {}
        if not isinstance(value, RunOptions):
            raise TypeError(f"StepRun.options takes RunOptions, not {type(value).__name__}")
        return value.as_json()

    def process_result_value(self, value, dialect):
        return RunOptions.from_json(value)


class StepRun(db.Model):
    """One attempt at a step: who ran it, with which inputs, and how it ended."""

    __tablename__ = "step_runs"
    __table_args__ = (Index("ix_step_runs_deployment_step", "deployment_id", "step_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    step_key: Mapped[str] = mapped_column(String(64))
    attempt: Mapped[int] = mapped_column(default=1)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    inputs: Mapped[dict] = mapped_column(JSON, default=dict)
    outcome: Mapped[dict | None] = mapped_column(JSON)
    phase: Mapped[str | None] = mapped_column(String(64))
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    # How the run was asked for (app.steps.RunOptions), and the phase whose completion was already
    # handed to advance() (conditional UPDATE elects exactly one advancer).
    options: Mapped[RunOptions] = mapped_column(RunOptionsType, default=lambda: RunOptions())
    advanced_phase: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    actor = relationship("User", lazy="joined")
    actions: Mapped[list["NodeAction"]] = relationship(
        back_populates="step_run", order_by="NodeAction.id", cascade="all, delete-orphan"
    )


class NodeAction(db.Model):
    """One vetted script run on one node within a phase of a step run."""

    __tablename__ = "node_actions"
    __table_args__ = (Index("ix_node_actions_run_phase", "step_run_id", "phase"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    step_run_id: Mapped[int] = mapped_column(
        ForeignKey("step_runs.id", ondelete="CASCADE"), index=True
    )
    node_id: Mapped[int | None] = mapped_column(ForeignKey("nodes.id", ondelete="SET NULL"))
    node_name: Mapped[str] = mapped_column(String(15))
    phase: Mapped[str] = mapped_column(String(64))
    script: Mapped[str] = mapped_column(String(128))
    parameters: Mapped[dict] = mapped_column(JSON, default=dict)
    upload: Mapped[dict | None] = mapped_column(JSON)
    # Added for execution: {script parameter: vault entry name} (names only, never values), label,
    # per-action timeout, and the remediation text of the error category.
    secret_params: Mapped[dict] = mapped_column(JSON, default=dict)
    label: Mapped[str | None] = mapped_column(String(200))
    timeout_seconds: Mapped[int | None] = mapped_column()
    remediation: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    try_count: Mapped[int] = mapped_column(default=0)
    worker: Mapped[str | None] = mapped_column(String(255))
    progress: Mapped[int | None] = mapped_column()
    result: Mapped[dict | list | None] = mapped_column(JSON)
    error_category: Mapped[str | None] = mapped_column(String(32))
    error_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Stream records the worker could not write while the database was unreachable (issue 18).
    output_lost: Mapped[int] = mapped_column(default=0, server_default="0")

    step_run: Mapped[StepRun] = relationship(back_populates="actions")

    @property
    def output_lost_notice(self) -> str | None:
        """What the operator reads about this action's unrecorded output (None: nothing lost)."""
        return output_lost_notice(self.output_lost)


def output_lost_notice(count: int | None) -> str | None:
    """Our words for `count` lines of a node's output that never reached the log."""
    if not count:
        return None
    lines = "1 line" if count == 1 else f"{count} lines"
    return (
        f"{lines} of this node's output could not be recorded while the database was unavailable."
    )


class Credential(db.Model):
    """WinRM credentials for a deployment, Fernet-encrypted, kept only while work is pending."""

    __tablename__ = "credentials"

    id: Mapped[int] = mapped_column(primary_key=True)
    deployment_id: Mapped[int] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), unique=True
    )
    username: Mapped[str] = mapped_column(String(255))
    secret: Mapped[bytes] = mapped_column(LargeBinary)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
