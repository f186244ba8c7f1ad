"""The execution state machine as one table: every status a step run or a node action takes, and the
only ways from one to another. Every status write of the engine is built here, as a compare-and-set
UPDATE whose WHERE clause is the move's "from" column, so a move that lost a race changes nothing.

Step run (StepRun.status)                        Node action (NodeAction.status)
  move       from               to                 move       from      to
  start      queued, running    running            create     (new)     queued
  succeed    queued, running    succeeded          claim      queued    running
  pass       queued, running    passed             claim_new  (new)     running
  fail       queued, running    failed             beat       running   (unchanged)
  cancel     queued, running    cancelled          requeue    running   queued
  interrupt  queued, running    interrupted        succeed    running   succeeded
                                                   fail       running   failed
A run ends once (its five endings leave only       stop       running   cancelled
terminal statuses). Its step record follows:       cancel     queued    cancelled
succeeded -> done, any other end ->                interrupt  running   interrupted
needs_attention (STEP_AFTER): after "passed"
(the attempt did its part, the step takes another) the operator starts the next attempt.

Who makes which move: machine.runs creates a run (queued); machine.phases starts phases (start)
and creates actions; machine.finishing ends runs; machine.decisions cancels queued actions;
the worker (app.execution.worker) claims, beats, requeues and ends actions; its reaper interrupts
actions whose heartbeat stopped and ends their runs.
"""

from __future__ import annotations

import functools
import os
import socket
import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Table, Update, bindparam, update

from app.models import NodeAction, StepRun, utcnow
from app.models.execution import ACTION_STATUSES, RUN_STATUSES


@dataclass(frozen=True)
class Move:
    """One row of a table: a named move from any of `sources` to `target` (None: status kept)."""

    name: str
    sources: tuple[str, ...]
    target: str | None


class Machine:
    """The moves of one kind of record and the compare-and-set statements that make them."""

    def __init__(self, what: str, table: Table, statuses: tuple[str, ...], moves: list[Move]):
        self.what, self.table, self.statuses = what, table, statuses
        self.moves = {m.name: m for m in moves}
        self.initial = statuses[0]

    def move(self, name: str) -> Move:
        try:
            return self.moves[name]
        except KeyError:
            raise LookupError(f"A {self.what} has no move {name!r}.") from None

    def values(self, name: str, values: dict[str, Any] | None = None) -> dict[str, Any]:
        """The columns `name` writes: its target status (if any) and `values`."""
        target = self.move(name).target
        return {**(values or {}), **({"status": target} if target else {})}

    def where(self, name: str) -> ColumnElement[bool]:
        """The condition that the record is in one of the move's "from" statuses."""
        return self.table.c.status.in_(self.move(name).sources)

    def update(self, name: str, *conditions: ColumnElement[bool], **values: Any) -> Update:
        """UPDATE ... SET status = target, values WHERE status IN sources AND conditions."""
        statement = update(self.table).where(self.where(name), *conditions)
        return statement.values(self.values(name, values))

    @property
    def terminal(self) -> frozenset[str]:
        """Statuses no move leaves."""
        left = {s for m in self.moves.values() for s in m.sources}
        return frozenset(s for s in self.statuses if s not in left)

    def successors(self, status: str) -> frozenset[str]:
        """Statuses one move can take a record in `status` to (itself for a move that keeps it)."""
        return frozenset(m.target or status for m in self.moves.values() if status in m.sources)


ACTIVE = ("queued", "running")

RUN = Machine(
    "step run",
    StepRun.__table__,
    RUN_STATUSES,
    [
        Move("start", ACTIVE, "running"),
        Move("succeed", ACTIVE, "succeeded"),
        Move("pass", ACTIVE, "passed"),
        Move("fail", ACTIVE, "failed"),
        Move("cancel", ACTIVE, "cancelled"),
        Move("interrupt", ACTIVE, "interrupted"),
    ],
)

ACTION = Machine(
    "node action",
    NodeAction.__table__,
    ACTION_STATUSES,
    [
        Move("claim", ("queued",), "running"),
        Move("beat", ("running",), None),
        Move("requeue", ("running",), "queued"),
        Move("succeed", ("running",), "succeeded"),
        Move("fail", ("running",), "failed"),
        Move("stop", ("running",), "cancelled"),
        Move("cancel", ("queued",), "cancelled"),
        Move("interrupt", ("running",), "interrupted"),
    ],
)

# How a run ended -> the move that ends it, and the status its step record takes.
RUN_END = {
    "succeeded": "succeed",
    "passed": "pass",
    "failed": "fail",
    "cancelled": "cancel",
    "interrupted": "interrupt",
}
STEP_AFTER = {
    "succeeded": "done",
    "passed": "needs_attention",
    "failed": "needs_attention",
    "cancelled": "needs_attention",
    "interrupted": "needs_attention",
}
# How a step's Finish ends its run (any other Finish status: failed).
RUN_AFTER_FINISH = {"done": "succeeded", "passed": "passed"}
# How an action ended (its runner result) -> the move that records it.
ACTION_END = {"succeeded": "succeed", "failed": "fail", "cancelled": "stop"}


def worker_name() -> str:
    """host:pid:thread, recorded on the action for operators and the reaper."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"[:255]


def claimed_values() -> dict[str, Any]:
    """The columns of an action this worker claims now (its try count is the caller's)."""
    now = utcnow()
    return {
        **ACTION.values("claim"),
        "started_at": now,
        "heartbeat_at": now,
        "worker": worker_name(),
    }


@functools.cache
def claim_statement() -> Update:
    """queued -> running, built once; claimed_values() come with each call."""
    table = NodeAction.__table__
    return (
        update(table)
        .where(table.c.id == bindparam("action_id"), ACTION.where("claim"))
        .values(try_count=table.c.try_count + 1)
    )


def claim_new(action: NodeAction) -> None:
    """Create `action` already claimed by this worker (KeepFirst, app.execution.worker.execute): it
    is inserted as running, in the transaction that starts its phase, so it has no queued state."""
    for key, value in claimed_values().items():
        setattr(action, key, value)
    action.try_count = 1
