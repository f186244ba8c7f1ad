"""Claiming a queued action for this worker: the one `queued -> running` move a task may make."""

from __future__ import annotations

from app.execution.machine.transitions import claim_statement, claimed_values
from app.extensions import db


def claim(action_id: int, *, commit: bool = True) -> bool:
    """queued -> running for this caller only; a redelivered task finds nothing to claim.

    With commit=False the caller commits (with its node.started event) and holds the row until then."""
    # A Core UPDATE (no ORM bookkeeping); the caller loads the row afresh.
    result = db.session.execute(claim_statement(), {"action_id": action_id, **claimed_values()})
    if commit:
        db.session.commit()
    return result.rowcount == 1
