"""Dashboard figures and the server-rendered SVG bar charts that show them (no JS, no CDN)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select

from app.extensions import db
from app.guides import DEFAULT_GUIDE, get_guide
from app.models import Deployment, NodeAction, StepRun, utcnow

OUTCOMES = ("completed", "aborted", "paused", "in_progress", "draft")


@dataclass(frozen=True)
class Bar:
    """One bar: its label, value and the text shown next to it."""

    label: str
    value: float
    text: str


def outcomes_by_week(weeks: int = 12) -> list[dict]:
    """Deployments started per ISO week, split by their current status."""
    since = utcnow() - timedelta(weeks=weeks)
    rows = db.session.execute(
        select(Deployment.created_at, Deployment.status).where(Deployment.created_at >= since)
    )
    buckets: dict[str, dict[str, int]] = {}
    for created, status in rows:
        year, week, _ = created.isocalendar()
        buckets.setdefault(f"{year}-W{week:02d}", {}).setdefault(status, 0)
        buckets[f"{year}-W{week:02d}"][status] += 1
    return [{"week": k, "counts": v, "total": sum(v.values())} for k, v in sorted(buckets.items())]


def median_step_seconds(limit: int = 20000) -> list[Bar]:
    """Median duration of successful attempts per step, in guide order."""
    rows = db.session.execute(
        select(StepRun.step_key, StepRun.started_at, StepRun.finished_at)
        .where(StepRun.status == "succeeded", StepRun.started_at.is_not(None))
        .order_by(StepRun.id.desc())
        .limit(limit)
    )
    durations: dict[str, list[float]] = {}
    for key, start, end in rows:
        if end:
            durations.setdefault(key, []).append((end - start).total_seconds())
    bars = []
    for step in get_guide(DEFAULT_GUIDE).steps:
        if step.key in durations:
            median = statistics.median(durations[step.key])
            bars.append(Bar(step.title, median, duration_text(median)))
    return bars


def failure_causes(top: int = 8) -> list[Bar]:
    """The most frequent error categories of failed remote actions."""
    count = func.count().label("n")
    rows = db.session.execute(
        select(NodeAction.error_category, count)
        .where(
            NodeAction.status.in_(("failed", "interrupted")), NodeAction.error_category.is_not(None)
        )
        .group_by(NodeAction.error_category)
        .order_by(count.desc())
        .limit(top)
    )
    return [Bar(category.replace("_", " "), n, str(n)) for category, n in rows]


def duration_text(value: float) -> str:
    """Seconds as a bar's text: tenths under 10 s (a quick check is not "0 s"), then whole
    seconds, then minutes and seconds."""
    if value < 10:
        return f"{value:.1f} s"
    minutes, secs = divmod(int(value), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def bar_chart(bars: list[Bar], width: int = 640, row: int = 26, label_width: int = 190) -> dict:
    """Geometry for a horizontal bar chart (the template draws the SVG)."""
    peak = max((b.value for b in bars), default=0) or 1
    span = width - label_width - 90
    return {
        "width": width,
        "height": row * len(bars) + 8,
        "rows": [
            {
                "y": i * row + 4,
                "label": b.label,
                "text": b.text,
                "x": label_width,
                "w": max(round(b.value / peak * span, 1), 1),
                "text_x": label_width + 6 + max(round(b.value / peak * span, 1), 1),
            }
            for i, b in enumerate(bars)
        ],
    }


def stacked_weeks(weeks: list[dict], width: int = 640, height: int = 180) -> dict:
    """Geometry for the stacked column chart of outcomes per week."""
    peak = max((w["total"] for w in weeks), default=0) or 1
    slot = (width - 40) / max(len(weeks), 1)
    columns = []
    for i, w in enumerate(weeks):
        y, parts = height - 20, []
        for status in OUTCOMES:
            n = w["counts"].get(status, 0)
            if n:
                h = round(n / peak * (height - 40), 1)
                y -= h
                parts.append({"status": status, "y": round(y, 1), "h": h, "n": n})
        columns.append(
            {
                "x": round(30 + i * slot, 1),
                "w": round(slot * 0.7, 1),
                "week": w["week"],
                "total": w["total"],
                "parts": parts,
            }
        )
    return {"width": width, "height": height, "columns": columns, "peak": peak}
