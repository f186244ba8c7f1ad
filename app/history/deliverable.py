"""The Summary as a deliverable: what was built, where it runs now, who did what, and whether it is
highly available. Shared by the wizard's Summary step, the history page, the printable report and
the JSON export, so they say the same thing.

Each guide builds its own facts: the guide's Summary step has a `facts(record)` method (the
failover cluster's in app/guides/cluster/summary.py, the farm's in
app/guides/load_balancer/summary.py). This module only finds that method, hands it a `Record` of
what the steps recorded (their inputs, each attempt's outcome and its scripts' JSON output), and
adds what every guide shares: who ran each step and when, what was skipped and what excluded.
It names no guide's steps.

Connection strings are reduced to their server and database: nothing else of them is shown.
"""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.guides import GUIDES
from app.guides.facts import data, parse_time, script
from app.models import Deployment, NodeAction


class Record:
    """What one deployment's steps recorded, read by a guide's facts builder.

    `step_rows` are app.history.timeline.steps() rows (guide order), `events` its timeline. The
    scripts' output is loaded once for every step's final attempt; `actions()` of any other
    attempt is loaded on first use."""

    def __init__(self, deployment: Deployment, step_rows: list[dict], events: list[dict]):
        self.deployment = deployment
        self.step_rows = step_rows
        self.events = events
        self.by_key = {s["key"]: s for s in step_rows}
        self._actions: dict[int, list[NodeAction]] = {}
        self.load([f["id"] for k in self.by_key if (f := self.final(k))])

    def row(self, key: str) -> dict:
        return self.by_key.get(key) or {}

    def title(self, key: str) -> str:
        return self.row(key).get("title") or key

    def status(self, key: str) -> str:
        return self.row(key).get("status") or "not_started"

    def inputs(self, key: str) -> dict:
        return dict(self.row(key).get("inputs") or {})

    def final(self, key: str) -> dict | None:
        """The step's succeeded attempt, or None when it did not succeed (or never ran)."""
        final = self.row(key).get("final")
        return final if final and final.get("status") == "succeeded" else None

    def artifacts(self, key: str) -> dict:
        return dict(((self.final(key) or {}).get("outcome") or {}).get("artifacts") or {})

    def attempts(self, key: str) -> list[dict]:
        """The step's attempts that did its work (not re-verifications), oldest first."""
        return [a for a in self.row(key).get("attempts") or [] if a["kind"] != "verification"]

    def load(self, run_ids: list[int]) -> None:
        wanted = [i for i in run_ids if i not in self._actions]
        if not wanted:
            return
        for i in wanted:
            self._actions[i] = []
        rows = db.session.scalars(
            select(NodeAction).where(NodeAction.step_run_id.in_(wanted)).order_by(NodeAction.id)
        )
        for action in rows:
            self._actions[action.step_run_id].append(action)

    def actions(self, run: dict | int | None) -> list[NodeAction]:
        """An attempt's actions, oldest first (an attempt row or its id)."""
        if not run:
            return []
        run_id = run["id"] if isinstance(run, dict) else run
        self.load([run_id])
        return self._actions[run_id]

    def outputs(self, run: dict | int | None, *scripts: str) -> list[tuple[NodeAction, dict]]:
        """(action, JSON output) of an attempt's succeeded actions running one of `scripts`."""
        found = []
        for action in self.actions(run):
            output = data(action)
            if output is not None and script(action) in scripts:
                found.append((action, output))
        return found

    def steps(self) -> list[dict]:
        """Each step: who ran (or skipped) it and when."""
        skipped = {
            e["step"]: e for e in self.events if e["kind"] == "step.skipped" and e.get("step")
        }
        out = []
        for s in self.step_rows:
            final = s.get("final")
            entry = {
                "key": s["key"],
                "number": s["number"],
                "title": s["title"],
                "status": s["status"],
                "attempts": len([a for a in s["attempts"] if a["kind"] != "verification"]),
                "actor": None,
                "started_at": None,
                "finished_at": None,
                "skip_reason": s.get("skip_reason"),
            }
            if s["status"] == "skipped" and s["key"] in skipped:
                event = skipped[s["key"]]
                entry["actor"] = event.get("actor")
                entry["finished_at"] = parse_time(event.get("at"))
            elif final:
                entry["actor"] = final.get("actor")
                entry["started_at"] = final.get("started_at")
                entry["finished_at"] = final.get("finished_at")
            out.append(entry)
        return out

    def skipped(self) -> list[dict]:
        return [
            {"key": s["key"], "title": s["title"], "reason": s.get("skip_reason")}
            for s in self.step_rows
            if s["status"] == "skipped"
        ]

    def excluded(self) -> list[dict]:
        """Excluded nodes with their reason, and who excluded them, during which step, when."""
        by_node: dict[str, dict] = {}
        for e in self.events:
            if e["kind"] == "nodes.excluded":
                for name in (e.get("payload") or {}).get("nodes") or []:
                    by_node[str(name).upper()] = e
        return [
            {
                "node": n.name,
                "reason": n.exclude_reason,
                "actor": (by_node.get(n.name.upper()) or {}).get("actor"),
                "step": (by_node.get(n.name.upper()) or {}).get("step"),
                "at": parse_time((by_node.get(n.name.upper()) or {}).get("at")),
            }
            for n in self.deployment.nodes
            if n.excluded
        ]

    @property
    def active_nodes(self) -> list[str]:
        return [n.name for n in self.deployment.active_nodes]


def build(deployment: Deployment, step_rows: list[dict], events: list[dict]) -> dict | None:
    """The deliverable for one deployment (plain data; datetimes stay datetimes), or None when its
    guide has no facts builder or the builder has nothing to say."""
    guide = GUIDES.get(deployment.guide_key)
    steps = guide.steps if guide else ()
    builder = next((s.facts for s in steps if callable(getattr(s, "facts", None))), None)
    if builder is None:
        return None
    return builder(Record(deployment, step_rows, events))
