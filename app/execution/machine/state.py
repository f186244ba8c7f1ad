"""Run and action states, the operator-facing StepBlocked error and the small queries modules share."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import ColumnElement, bindparam, func, inspect, select, update
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.attributes import set_committed_value

from app.execution import vault
from app.execution.machine.transitions import ACTIVE, RUN
from app.extensions import db
from app.models import Deployment, NodeAction, StepRun, utcnow

ACTIVE_RUN = ACTIVE
PENDING_ACTION = ACTIVE


class StepBlocked(Exception):
    """The request cannot be honoured now; the message tells the operator why."""


@functools.cache
def _lock_statements() -> tuple[Any, Any, Any]:
    """lock_deployment's statements, built once (every run start and decision): the UPDATE that
    takes SQLite's write lock, the fresh read, and the read that locks the row (PostgreSQL)."""
    table = Deployment.__table__
    lock = (
        update(table)
        .where(table.c.id == bindparam("deployment_id"))
        .values(last_activity_at=bindparam("last_activity_at"))
    )
    read = (
        select(Deployment)
        .where(Deployment.id == bindparam("deployment_id"))
        .options(joinedload(Deployment.steps), joinedload(Deployment.nodes))
        .execution_options(populate_existing=True)
    )
    return lock, read, read.with_for_update(of=Deployment)


def lock_deployment(
    deployment_id: int,
    *,
    credentials: tuple[str, str] | None = None,
    owner_id: int | None = None,
) -> Deployment:
    """Take the deployment's row lock (write lock on SQLite) so start/decide requests serialise,
    then read the deployment, its step records and its nodes afresh (one query): checks made under
    the lock must not use what the request read before it (two tabs submitting at once).

    credentials: (user name, password) to keep in the vault, written after the lock, in the
    caller's transaction: a finishing worker locks the deployment, then wipes the vault, and the
    same order on both sides cannot deadlock."""
    lock, read, read_locking = _lock_statements()
    if db.session.get_bind().dialect.name == "postgresql":  # the read takes the row lock itself
        read = read_locking
    else:  # SQLite: a write takes the database write lock
        db.session.execute(lock, {"deployment_id": deployment_id, "last_activity_at": utcnow()})
    deployment = (
        db.session.execute(read, {"deployment_id": deployment_id}).unique().scalar_one_or_none()
    )
    if deployment is None:
        raise StepBlocked("No such deployment.")
    if credentials is not None:
        vault.store_credentials(deployment_id, *credentials, owner_id=owner_id, commit=False)
    return deployment


def update_active_run(
    run: StepRun, move: str, values: dict[str, Any], *conditions: ColumnElement
) -> bool:
    """Make the run's `move` (transitions.RUN) with `values`, as a compare-and-set UPDATE from the
    move's "from" statuses (and `conditions`); False if the run was no longer there to move.

    A Core statement: it locks the row without the ORM's bookkeeping, and `run` takes the values
    written without a reload. "start" keeps the run's started_at or sets it now.

    A run this transaction created and has not written yet (start_step_run) is nobody else's: it
    takes the values and is inserted with them, which saves the UPDATE."""
    table = StepRun.__table__
    sent, written = RUN.values(move, values), RUN.values(move, values)
    if move == "start":
        now = utcnow()
        sent["started_at"] = func.coalesce(table.c.started_at, now)
        written["started_at"] = run.started_at or now
    if inspect(run).pending:
        for key, value in written.items():
            setattr(run, key, value)
        db.session.flush()  # its id, for the rows that name it
        return True
    updated = db.session.execute(
        update(table).where(table.c.id == run.id, RUN.where(move), *conditions).values(sent)
    ).rowcount
    if updated != 1:
        return False
    for key, value in written.items():
        set_committed_value(run, key, value)
    return True


def active_run(deployment_id: int) -> StepRun | None:
    """The deployment's queued or running StepRun, if any."""
    return db.session.scalar(
        select(StepRun)
        .where(StepRun.deployment_id == deployment_id, StepRun.status.in_(ACTIVE_RUN))
        .limit(1)
    )


def pending_count(run_id: int, phase: str | None = None) -> int:
    """How many actions of the run (or of one phase) are still queued or running."""
    query = select(func.count()).where(
        NodeAction.step_run_id == run_id, NodeAction.status.in_(PENDING_ACTION)
    )
    if phase is not None:
        query = query.where(NodeAction.phase == phase)
    return db.session.scalar(query) or 0
