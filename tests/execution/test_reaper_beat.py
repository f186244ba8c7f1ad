"""The reaper ends running actions whose heartbeat is older than the grace period, and only
those; under `make run` its beat does so on its own."""

from datetime import timedelta

import pytest

from app.execution.worker import reaper
from app.extensions import db
from app.models import NodeAction, utcnow
from tests.execution.harness import (
    QUEUE,
    Worker,
    events_of,
    running_run,
    seed_deployment,
    wait_for,
)


def _stale_action(deployment_id: int, heartbeat_at=None) -> int:
    """A run whose only action claims to be running on a worker whose last beat was at
    `heartbeat_at` (an hour ago by default)."""
    long_ago = utcnow() - timedelta(hours=1)
    _, actions = running_run(deployment_id, long_ago, {"node1": heartbeat_at or long_ago})
    return actions["node1"]


def _statuses(action_id: int) -> tuple[str, str]:
    """(action status, its run's status)."""
    db.session.expire_all()
    action = db.session.get(NodeAction, action_id)
    statuses = action.status, action.step_run.status
    db.session.commit()
    return statuses


MS = timedelta(milliseconds=1)


@pytest.mark.parametrize(
    ("after_cutoff", "interrupted"),
    [
        (None, False),  # beat just now
        (timedelta(seconds=1), False),  # within the grace period
        (timedelta(0), False),  # exactly the grace period old: not older, so not stale yet
        (-MS, True),  # a millisecond past it
        (-timedelta(hours=1), True),
    ],
    ids=["beating", "within-grace", "at-the-grace", "just-past", "an-hour-old"],
)
def test_only_a_heartbeat_older_than_the_grace_period_is_interrupted(
    exec_ctx, lab, monkeypatch, after_cutoff, interrupted
):
    now = utcnow()
    monkeypatch.setattr(reaper, "utcnow", lambda: now)  # the sweep's clock stands still
    cutoff = now - timedelta(seconds=exec_ctx.config["REAPER_GRACE_SECONDS"])
    beat = now if after_cutoff is None else cutoff + after_cutoff
    deployment_id = seed_deployment(lab)
    action_id = _stale_action(deployment_id, heartbeat_at=beat)

    assert reaper.reap_stale_actions() == ([action_id] if interrupted else [])

    expected = "interrupted" if interrupted else "running"
    assert _statuses(action_id) == (expected, expected)
    kinds = [e.kind for e in events_of(deployment_id)]
    assert kinds == (["action.interrupted", "step.paused"] if interrupted else [])


@pytest.mark.slow
def test_beat_in_the_worker_marks_a_stale_action_interrupted(exec_ctx, lab, exec_db_url, tmp_path):
    action_id = _stale_action(seed_deployment(lab))
    beat = Worker(
        exec_db_url,
        tmp_path / "beat.log",
        queue=f"{QUEUE}-beat",
        beat=True,
        extra_env={"REAPER_INTERVAL_SECONDS": "2"},
    )
    try:
        wait_for(
            lambda: _statuses(action_id) == ("interrupted", "interrupted"),
            45,
            0.5,
            "the beat-driven reaper to end the action and its run",
        )
    finally:
        beat.stop(graceful=False)
    assert _statuses(action_id) == ("interrupted", "interrupted")
