"""The reaper runs on its own under `make run` (worker started with -B) and ends stale actions."""

from datetime import timedelta

import pytest

from app.extensions import db
from app.models import NodeAction, StepRun, utcnow
from tests.execution.harness import QUEUE, Worker, seed_deployment, wait_for

pytestmark = pytest.mark.slow


def _stale_action(deployment_id: int) -> int:
    """A run whose only action claims to be running on a worker that stopped beating an hour ago."""
    long_ago = utcnow() - timedelta(hours=1)
    run = StepRun(
        deployment_id=deployment_id,
        step_key="exec_step",
        attempt=1,
        status="running",
        phase="detect",
        started_at=long_ago,
    )
    db.session.add(run)
    db.session.flush()
    action = NodeAction(
        step_run_id=run.id,
        node_name="node1",
        phase="detect",
        script="exec_detect",
        parameters={},
        secret_params={},
        status="running",
        started_at=long_ago,
        heartbeat_at=long_ago,
        worker="gone:1:Thread-1",
    )
    db.session.add(action)
    db.session.commit()
    return action.id


def _statuses(action_id: int) -> tuple[str, str]:
    """(action status, its run's status)."""
    db.session.expire_all()
    action = db.session.get(NodeAction, action_id)
    statuses = action.status, action.step_run.status
    db.session.commit()
    return statuses


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
