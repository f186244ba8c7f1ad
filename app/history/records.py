"""A step run and a node action as data: the one place that names their fields, reads a run's
options, times them and masks what people typed or scripts returned (app.masking).

The JSON API (app.api.present), the history page and report (app.history.timeline) and the export
(app.history.export) all build on `run_record` and `action_record`; each may leave fields out or
add its own, never rename them. Times stay datetimes here; wherever they become JSON they are
ISO 8601 (`timestamp`, the format marshmallow's DateTime writes for the API).

Here, in app.history, because the API may import the history and the engine imports neither.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from app.guides import GUIDES
from app.masking import mask
from app.models import NodeAction, StepRun


@functools.cache
def declared_secret_names() -> frozenset[str]:
    """Every input a step of any guide declares secret (Step.secret_fields)."""
    return frozenset(f for g in GUIDES.values() for s in g.steps for f in s.secret_fields)


def run_options(run: StepRun) -> dict[str, Any]:
    """How the run was asked for, as JSON (the only reader of StepRun.options here)."""
    return run.options.as_json()


def run_kind(options: dict[str, Any]) -> str:
    """The kind of attempt: "run", the decision that started it (retry...) or "verification"."""
    if options.get("mode") == "verify":
        return "verification"
    return options.get("decision") or "run"


def seconds(start: datetime | None, end: datetime | None) -> float | None:
    """Duration in seconds, or None when either end is missing."""
    return round((end - start).total_seconds(), 1) if start and end else None


def timestamp(value: datetime | None) -> str | None:
    """A time as JSON: ISO 8601."""
    return value.isoformat() if value is not None else None


def jsonable(value: Any) -> Any:
    """`value` with every datetime as timestamp() and tuples as lists, at any depth."""
    if isinstance(value, datetime):
        return timestamp(value)
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def shown_inputs(inputs: dict | None, secret_fields: tuple[str, ...] = ()) -> dict[str, Any]:
    """Saved inputs as shown anywhere: secret fields left out, passwords in text masked."""
    return mask(inputs or {}, (*secret_fields, *declared_secret_names()))


def action_record(action: NodeAction) -> dict[str, Any]:
    """A node action as data (masked)."""
    return mask(
        {
            "id": action.id,
            "node": action.node_name,
            "phase": action.phase,
            "script": action.script,
            "label": action.label,
            "status": action.status,
            "try_count": action.try_count,
            "progress": action.progress,
            "error_category": action.error_category,
            "error_message": action.error_message,
            "remediation": action.remediation,
            "output_lost": action.output_lost,
            "output_lost_notice": action.output_lost_notice,
            "result": action.result,
            "started_at": action.started_at,
            "finished_at": action.finished_at,
            "seconds": seconds(action.started_at, action.finished_at),
        },
        declared_secret_names(),
    )


def run_record(run: StepRun, omit_action_fields: tuple[str, ...] = ()) -> dict[str, Any]:
    """A step run as data with its actions, oldest first (masked); `omit_action_fields` are left
    out of each action."""
    options = run_options(run)
    record = mask(
        {
            "id": run.id,
            "step": run.step_key,
            "attempt": run.attempt,
            "status": run.status,
            "kind": run_kind(options),
            "phase": run.phase,
            "actor": run.actor.username if run.actor else None,
            "options": options,
            "inputs": run.inputs or {},
            "outcome": run.outcome,
            "created_at": run.created_at,
            "started_at": run.started_at,
            "finished_at": run.finished_at,
            "seconds": seconds(run.started_at, run.finished_at),
        },
        declared_secret_names(),
    )
    record["actions"] = [_without(action_record(a), omit_action_fields) for a in run.actions]
    return record


def _without(row: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in fields}
