"""The execution API other packages use: start, advance, cancel and decide step runs; run one action.

State lives in the database and every transition is a conditional UPDATE, so a task delivered twice, two
workers finishing the last actions of a phase at once, or a reaper racing a slow worker never repeat work.
The decisions live in app.execution.machine (its table of moves in machine.transitions), running an action
in app.execution.worker; this facade re-exports what other packages may call, so they import only it
(and vault, health and probe, which are not part of the state machine).
"""

from app.execution.dispatch import CeleryEnqueue, Enqueue, default_enqueue
from app.execution.machine.decisions import DECISIONS, accept_credentials, cancel, resolve_pause
from app.execution.machine.finishing import end_run, mark_interrupted
from app.execution.machine.phases import advance, after_action, build_view
from app.execution.machine.runs import start_step_run
from app.execution.machine.state import (
    ACTIVE_RUN,
    PENDING_ACTION,
    StepBlocked,
    lock_deployment,
    pending_count,
)
from app.execution.worker.execute import advance_and_run, execute_action

__all__ = [
    "ACTIVE_RUN",
    "DECISIONS",
    "PENDING_ACTION",
    "CeleryEnqueue",
    "Enqueue",
    "StepBlocked",
    "accept_credentials",
    "advance",
    "advance_and_run",
    "after_action",
    "build_view",
    "cancel",
    "default_enqueue",
    "end_run",
    "execute_action",
    "lock_deployment",
    "mark_interrupted",
    "pending_count",
    "resolve_pause",
    "start_step_run",
]
