"""The beat is a service of its own: one per installation, and its absence is said on the screen."""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta

import pytest

from app.execution import health
from app.extensions import db
from app.models import ServiceBeat, TaskOutbox, utcnow
from config import TestConfig
from tests.execution.harness import (
    ROOT,
    SETTINGS,
    Beat,
    running_run,
    seed_deployment,
    wait_for,
)

pytestmark = pytest.mark.slow


def _env(db_url: str) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": db_url,
        "CREDENTIAL_KEY": TestConfig.CREDENTIAL_KEY,
        "SECRET_KEY": "beat-secret",
        "PYTHONPATH": str(ROOT),
        **{k: str(v) for k, v in SETTINGS.items()},
    }


def _started(beat: Beat) -> bool:
    return b"beat: Starting" in beat.log_path.read_bytes() or beat.proc.poll() is not None


def test_a_second_beat_exits_and_a_new_one_takes_over_when_the_first_dies(exec_db_url, tmp_path):
    env = _env(exec_db_url)
    first = Beat(env, tmp_path / "first.log", tmp_path / "first-schedule")
    try:
        wait_for(lambda: _started(first), 30, 0.1, "the first beat to start")
        assert first.proc.poll() is None, first.log_path.read_text()
        second = Beat(env, tmp_path / "second.log", tmp_path / "second-schedule")
        code = wait_for(lambda: second.proc.poll() is not None and second.proc.returncode, 30, 0.1)
        second.stop()
        assert code != 0
        assert "Another beat is already running" in second.log_path.read_text()
        assert first.proc.poll() is None  # the holder is untouched

        first.stop(signal.SIGKILL)  # dies without a word: the lock goes with the process
        third = Beat(env, tmp_path / "third.log", tmp_path / "third-schedule")
        try:
            wait_for(lambda: _started(third), 30, 0.1, "the third beat to start")
            time.sleep(2)  # it must still be running after taking the lock
            assert third.proc.poll() is None, third.log_path.read_text()
            assert "Another beat" not in third.log_path.read_text()
        finally:
            third.stop()
    finally:
        if first.proc.poll() is None:
            first.stop()


def _running_run(deployment_id: int, started_ago: timedelta):
    return running_run(deployment_id, utcnow() - started_ago)[0]


def test_a_late_reaper_is_reported_while_a_step_runs(exec_ctx, lab):
    run = _running_run(seed_deployment(lab), timedelta(minutes=5))
    assert health.reaper_late(run.started_at) == run.started_at  # never swept since it started
    assert any("stale-work check has not run" in n for n in health.notices(run.started_at))
    health.record_beat()
    assert health.reaper_late(run.started_at) is None
    assert health.notices(run.started_at) == []
    assert health.notices(None) == []  # nothing runs: nothing to warn about
    db.session.execute(db.update(ServiceBeat).values(beat_at=utcnow() - timedelta(minutes=2)))
    db.session.commit()
    assert health.reaper_late(run.started_at) is not None


def test_a_young_run_is_not_warned_about(exec_ctx, lab):
    run = _running_run(seed_deployment(lab), timedelta(seconds=1))
    assert health.notices(run.started_at) == []


def test_tasks_waiting_for_the_broker_are_said(exec_ctx):
    db.session.add(TaskOutbox(task="app.execution.tasks.run_node_action", args=[1], countdown=0))
    db.session.add(TaskOutbox(task="app.execution.tasks.run_node_action", args=[2], countdown=0))
    db.session.commit()
    (notice,) = health.notices(None)
    assert notice.startswith("Waiting for the message broker: 2 task(s)")


def test_the_step_page_says_tasks_wait_for_the_broker(exec_ctx, lab):
    from tests.execution.harness import USER_PASSWORD, make_user

    deployment_id = seed_deployment(lab)
    db.session.add(TaskOutbox(task="app.execution.tasks.run_node_action", args=[1], countdown=0))
    db.session.commit()
    make_user("notices")
    client = exec_ctx.test_client()
    page = client.get("/login")
    token = page.get_data(as_text=True).split('name="csrf_token" type="hidden" value="')[1]
    login = {"username": "notices", "password": USER_PASSWORD, "csrf_token": token.split('"')[0]}
    assert client.post("/login", data=login).status_code in (302, 303)
    html = client.get(f"/deployments/{deployment_id}/steps/exec_step").get_data(as_text=True)
    assert "Waiting for the message broker: 1 task(s)" in html


def test_make_run_and_compose_run_the_beat_beside_the_worker_never_inside_it():
    import yaml

    from app.devserver import _commands

    commands = _commands("lab-password")
    assert "-B" not in commands["worker"] and "--beat" not in commands["worker"]
    assert commands["beat"][commands["beat"].index("app.execution.worker.main") + 1] == "beat"
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert "-B" not in services["worker"]["command"]
    assert "beat" in services["beat"]["command"]
    assert services["beat"]["restart"] == services["worker"]["restart"] == "unless-stopped"
