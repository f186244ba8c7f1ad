"""What a deployment's history page and exports show: steps, attempts, node durations, the timeline."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.context import shown_status
from app.extensions import db
from app.guides import get_guide
from app.history import deliverable
from app.history.records import run_record, shown_inputs
from app.masking import mask
from app.models import Deployment, Event, StepRun, User

# Per-line script output stays on the step page; the timeline keeps what people and steps did.
STREAM_KINDS = (
    "node.output",
    "node.progress",
    "node.information",
    "node.verbose",
    "node.debug",
    "node.warning",
    "node.error",
)
TIMELINE_LIMIT = 5000


# The scripts' JSON output stays on the step page (and in the API); the record keeps the rest.
OMITTED_ACTION_FIELDS = ("result",)


def _runs(deployment_id: int) -> dict[str, list[dict]]:
    rows = db.session.scalars(
        select(StepRun)
        .where(StepRun.deployment_id == deployment_id)
        .options(selectinload(StepRun.actions))
        .order_by(StepRun.step_key, StepRun.attempt)
    )
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r.step_key, []).append(run_record(r, OMITTED_ACTION_FIELDS))
    return out


def steps(deployment: Deployment) -> list[dict]:
    """Each step in guide order: its status as the wizard shows it, and its attempts."""
    records = {s.step_key: s for s in deployment.steps}
    runs = _runs(deployment.id)
    out = []
    for number, step in enumerate(get_guide(deployment.guide_key).steps, 1):
        record = records.get(step.key)
        attempts = runs.get(step.key, [])
        work = [a for a in attempts if a["kind"] != "verification"]
        status = shown_status(step, record.status if record else None, deployment.status)
        out.append(
            {
                "key": step.key,
                "title": step.title,
                "number": number,
                "status": status,  # the wizard's word for it: done, skipped, needs attention...
                "skip_reason": record.skip_reason if record else None,
                "inputs": shown_inputs(record.inputs if record else None, step.secret_fields),
                "attempts": attempts,
                # An attempt after a passed one is the step's next part (a farm test round),
                # not a retry: only those after a failed, cancelled or interrupted one count.
                "retries": sum(1 for a in work[:-1] if a["status"] != "passed"),
                "seconds": round(sum(a["seconds"] or 0 for a in work), 1) or None,
                "final": next(
                    (a for a in reversed(work) if a["status"] == "succeeded"),
                    work[-1] if work else None,
                ),
            }
        )
    return out


def events(deployment_id: int) -> list[dict]:
    """The timeline: every event except script output lines, oldest first, with who did it."""
    rows = db.session.execute(
        select(Event, User.username)
        .outerjoin(User, User.id == Event.actor_id)
        .where(Event.deployment_id == deployment_id, Event.kind.not_in(STREAM_KINDS))
        .order_by(Event.seq)
        .limit(TIMELINE_LIMIT)
    )
    return [mask({**event.as_dict(), "actor": name}) for event, name in rows]


def take_overs(items: list[dict]) -> list[dict]:
    """The take-over events of a timeline."""
    return [e for e in items if e["kind"] == "lease.taken_over"]


def test_cluster_reports(step_rows: list[dict]) -> list[dict]:
    """Every Test-Cluster report kept in a run's outcome, newest last."""
    return [
        {
            "attempt": a["attempt"],
            "step": s["title"],
            **a["outcome"]["artifacts"]["test_cluster_report"],
        }
        for s in step_rows
        for a in s["attempts"]
        if ((a["outcome"] or {}).get("artifacts") or {}).get("test_cluster_report")
    ]


def deployment_page(deployment: Deployment) -> dict:
    """Everything the history page, the printable report and the JSON export share."""
    step_rows = steps(deployment)
    items = events(deployment.id)
    return {
        "deployment": deployment,
        "summary": mask(deliverable.build(deployment, step_rows, items)),
        "steps": step_rows,
        "events": items,
        "take_overs": take_overs(items),
        "reports": test_cluster_reports(step_rows),
        "notes": [e for e in items if e["kind"] == "note.added"],
        "nodes": deployment.nodes,
    }
