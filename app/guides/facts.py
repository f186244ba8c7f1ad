"""Helpers the guides' Summary steps build their facts with (app.history.deliverable hands them
a record of what the steps did): plain functions of recorded values, no database, no pages.

Connection strings are reduced to their server and database: nothing else of them is shown.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app import validators
from app.models import NodeAction
from app.steps import HA_MIN_NODES
from app.wizard import route

__all__ = [
    "HA_MIN_NODES",
    "data",
    "database_text",
    "ha_verdict",
    "parse_time",
    "rounded",
    "script",
    "skipped_test",
    "too_few_nodes",
]

# The headline of each high availability status a Summary step gives.
HA_HEADLINES = {
    "yes": "Highly available",
    "no": "Not highly available",
    "unverified": "High availability not verified",
    "pending": "High availability not tested yet",
}


def database_text(connection_string: str | None) -> str | None:
    """'<database> on <server>' from a connection string; never any other keyword (passwords)."""
    if not connection_string:
        return None
    try:
        parts = validators.parse_connection_string(str(connection_string))
    except ValueError:
        return "a connection string the wizard could not read"
    server = next(
        (parts[k] for k in ("server", "data source", "address", "addr") if parts.get(k)), None
    )
    database = next((parts[k] for k in ("database", "initial catalog") if parts.get(k)), None)
    if server and database:
        return f"{database} on {server}"
    return server or database


def data(action: NodeAction) -> dict | None:
    """A succeeded action's JSON output, or None."""
    if action.status != "succeeded" or not isinstance(action.result, dict):
        return None
    found = action.result.get("data")
    return found if isinstance(found, dict) else None


def script(action: NodeAction) -> str:
    """The script the action really ran (a scheduled task's payload, or its own)."""
    return route.inner_script(action.script, action.parameters or {})


def parse_time(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def rounded(value: Any, digits: int = 1) -> float | None:
    try:
        return round(float(value), digits)
    except (TypeError, ValueError):
        return None


def ha_verdict(status: str, text: str) -> dict[str, Any]:
    """Whether the deployment is highly available: status ('yes', 'no', 'unverified' or
    'pending'), its headline and the text that says why."""
    return {"status": status, "headline": HA_HEADLINES[status], "text": text}


def too_few_nodes(active: list[str], consequence: str) -> dict[str, Any] | None:
    """'no' when fewer than HA_MIN_NODES nodes remain (`consequence` says what that means and
    what to do), else None."""
    if len(active) >= HA_MIN_NODES:
        return None
    count = "1 node" if len(active) == 1 else f"{len(active)} nodes"
    return ha_verdict(
        "no",
        f"Only {count} ({', '.join(active) or 'none'}) remain in this deployment: {consequence}",
    )


def skipped_test(test: str, skip_reason: str | None, unknown: str) -> dict[str, Any]:
    """'unverified': the `test` test was skipped, so `unknown` is not shown."""
    reason = f" ({skip_reason})" if skip_reason else ""
    return ha_verdict("unverified", f"The {test} test was skipped{reason}: {unknown}")
