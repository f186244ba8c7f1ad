"""The execution API other packages use: start, advance, cancel and decide step runs; run one action.

State lives in the database and every transition is a conditional UPDATE, so a task delivered twice, two
workers finishing the last actions of a phase at once, or a reaper racing a slow worker never repeat work.
The functions live in small modules (runs, phases, finishing, decisions, execute); this facade re-exports
them so callers keep one import.
"""

from app.execution.decisions import DECISIONS, cancel, resolve_pause
from app.execution.dispatch import CeleryEnqueue, Enqueue, default_enqueue
from app.execution.execute import advance_and_run, execute_action
from app.execution.finishing import end_run, mark_interrupted
from app.execution.phases import advance, after_action, build_view
from app.execution.runs import start_step_run
from app.execution.state import ACTIVE_RUN, PENDING_ACTION, StepBlocked, pending_count

__all__ = [
    "ACTIVE_RUN",
    "DECISIONS",
    "PENDING_ACTION",
    "CeleryEnqueue",
    "Enqueue",
    "StepBlocked",
    "advance",
    "advance_and_run",
    "after_action",
    "build_view",
    "cancel",
    "default_enqueue",
    "end_run",
    "execute_action",
    "mark_interrupted",
    "pending_count",
    "resolve_pause",
    "start_step_run",
]
