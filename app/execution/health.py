"""Is the machinery behind a running step alive? What the step page warns about.

- the reaper (run by the beat service every REAPER_INTERVAL_SECONDS) records each sweep in
  `service_beats`; when it is late while a step runs, a crashed worker's step would stay "running"
  with nobody to notice, so the page says so;
- tasks that the broker refused wait in the outbox (outbox.py) until it answers again.
"""

from __future__ import annotations

import socket
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select, update

from app.execution import outbox
from app.extensions import db
from app.models import ServiceBeat, utcnow

REAPER = "reaper"


def record_beat(name: str = REAPER) -> None:
    """Note that `name` just did its work (upsert, committed)."""
    now, host = utcnow(), socket.gethostname()
    updated = db.session.execute(
        update(ServiceBeat).where(ServiceBeat.name == name).values(beat_at=now, host=host)
    ).rowcount
    if not updated:
        db.session.add(ServiceBeat(name=name, beat_at=now, host=host))
    db.session.commit()


def reaper_late(run_started_at: datetime) -> datetime | None:
    """The reaper's last sweep (or the run's start, if it never swept) when that is more than three
    intervals ago; None while it keeps time."""
    interval = float(current_app.config.get("REAPER_INTERVAL_SECONDS", 15))
    last = db.session.scalar(select(ServiceBeat.beat_at).where(ServiceBeat.name == REAPER))
    since = max(last, run_started_at) if last else run_started_at
    return since if utcnow() - since > timedelta(seconds=3 * interval + 5) else None


def notices(run_started_at: datetime | None) -> list[str]:
    """Warnings for a step page: the broker backlog always; the reaper while a run is active
    (`run_started_at` is None when none is)."""
    found = []
    count, since = outbox.waiting()
    if count:
        found.append(
            f"Waiting for the message broker: {count} task(s) could not be sent since "
            f"{since:%H:%M:%S} UTC and go out as soon as Redis answers again."
        )
    late = reaper_late(run_started_at) if run_started_at else None
    if late is not None:
        found.append(
            f"The stale-work check has not run since {late:%H:%M:%S} UTC: is the beat service "
            "running? Until it is, a step whose worker died would stay running."
        )
    return found
