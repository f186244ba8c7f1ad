"""A Redis restart while a step runs: the worker rides it out, the step finishes, nothing is lost or
repeated. Redis is a private instance on a free port (the machine's own is never restarted)."""

from __future__ import annotations

import time

import pytest
from celery import Celery
from sqlalchemy import select

from app.execution import health, outbox, service
from app.extensions import db
from app.models import NodeAction
from config import _celery_settings
from tests.execution.harness import (
    QueueEnqueue,
    Worker,
    events_of,
    run_status,
    seed_deployment,
    wait_for,
)
from tests.services import PrivateRedis

pytestmark = pytest.mark.slow
TERMINAL = ("succeeded", "failed", "cancelled", "interrupted")


@pytest.fixture
def redis_server(tmp_path):
    server = PrivateRedis(tmp_path / "redis")
    yield server
    server.stop()


def _sender(url: str) -> Celery:
    """The web side's Celery app, aimed at the private broker."""
    sender = Celery("broker-restart-test")
    sender.config_from_object(_celery_settings(url, None))
    return sender


def _start(ctx, lab, db_url, redis_server, folder, queue: str, seconds: float):
    """A worker on the private broker and a run of exec_step on the lab; (worker, deployment, run)."""
    worker = Worker(
        db_url, folder / "worker.log", queue=queue, extra_env={"REDIS_URL": redis_server.url}
    )
    deployment_id = seed_deployment(lab, inputs={"seconds": seconds})
    enqueue = QueueEnqueue(ctx, worker.queue, _sender(redis_server.url))
    return worker, deployment_id, service.start_step_run(deployment_id, "exec_step", None, enqueue)


def _wait_end(run_id: int) -> str:
    return wait_for(lambda: (s := run_status(run_id)) in TERMINAL and s, 90, 0.1, "the run to end")


def _assert_nothing_lost_or_repeated(deployment_id: int, observed, nodes) -> None:
    events = events_of(deployment_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    starts = [e.node_action_id for e in events if e.kind == "node.started"]
    ends = [e.node_action_id for e in events if e.kind == "node.finished"]
    assert sorted(starts) == sorted(set(starts)) == sorted(ends), (
        "an action ran twice or never ended"
    )
    assert observed.applies == dict.fromkeys(nodes, 1)


def test_redis_restart_mid_step_the_worker_survives_and_the_step_finishes(
    exec_ctx, lab, observed, exec_db_url, redis_server, tmp_path
):
    worker, deployment_id, run = _start(
        exec_ctx, lab, exec_db_url, redis_server, tmp_path, "broker-restart", 2.5
    )
    try:
        wait_for(observed.started.is_set, 30, message="the lab to start applying")
        redis_server.stop()
        time.sleep(1.5)  # the outage itself: Redis is down while the nodes work
        redis_server.start()
        status = _wait_end(run.id)
        log = worker.log_path.read_text()
        assert worker.proc.poll() is None, f"the worker died:\n{log[-3000:]}"
        assert "Unrecoverable error" not in log, log[-3000:]
        assert status == "succeeded", log[-3000:]
        _assert_nothing_lost_or_repeated(deployment_id, observed, lab.node_names)
    finally:
        worker.stop(graceful=False)


def _apply_ended(run_id: int) -> bool:
    db.session.expire_all()
    statuses = db.session.scalars(
        select(NodeAction.status).where(
            NodeAction.step_run_id == run_id, NodeAction.phase == "apply"
        )
    ).all()
    db.session.commit()
    return bool(statuses) and all(s != "running" and s != "queued" for s in statuses)


def test_tasks_refused_while_redis_is_down_are_sent_within_seconds_of_its_return(
    exec_ctx, lab, observed, exec_db_url, redis_server, tmp_path
):
    worker, deployment_id, run = _start(
        exec_ctx, lab, exec_db_url, redis_server, tmp_path, "broker-outbox", 1
    )
    try:
        wait_for(observed.started.is_set, 30, message="the lab to start applying")
        redis_server.stop()
        # The apply phase ends while Redis is down: the verify phase's tasks cannot be sent.
        wait_for(lambda: _apply_ended(run.id), 30, 0.1, "the apply phase to end")
        count = wait_for(lambda: outbox.waiting()[0], 15, 0.1, "tasks to wait in the outbox")
        assert count >= 1
        (notice,) = health.notices(None)
        assert notice.startswith("Waiting for the message broker")
        returned = time.monotonic()
        redis_server.start()
        status = _wait_end(run.id)
        elapsed = time.monotonic() - returned
        log = worker.log_path.read_text()
        assert status == "succeeded", log[-3000:]
        # The flusher sends within about a second; the reaper's re-send of lost work would take
        # four grace periods (12 s here) and no beat runs in this test.
        assert elapsed < 8, f"{elapsed:.1f} s after Redis returned"
        assert outbox.waiting()[0] == 0
        _assert_nothing_lost_or_repeated(deployment_id, observed, lab.node_names)
    finally:
        worker.stop(graceful=False)


def _actions(run_id: int) -> list[NodeAction]:
    db.session.expire_all()
    rows = db.session.scalars(
        select(NodeAction).where(NodeAction.step_run_id == run_id).order_by(NodeAction.id)
    ).all()
    db.session.commit()
    return list(rows)


def test_a_worker_hit_by_an_unrecoverable_error_starts_nothing_new(
    exec_ctx, lab, observed, exec_db_url, redis_server, tmp_path
):
    trigger = tmp_path / "crash-now"
    env = {"REDIS_URL": redis_server.url, "AMSW_TEST_CRASH_TRIGGER": str(trigger)}
    doomed = Worker(
        exec_db_url,
        tmp_path / "doomed.log",
        queue="broker-crash",
        extra_env=env,
        includes=("tests.execution.crashstep",),
    )
    healthy = None
    try:
        # Long enough that the doomed worker is still applying when it fails (its consumer
        # reconnects about 2 s after Redis returns).
        deployment_id = seed_deployment(lab, inputs={"seconds": 6})
        enqueue = QueueEnqueue(exec_ctx, doomed.queue, _sender(redis_server.url))
        run = service.start_step_run(deployment_id, "exec_step", None, enqueue)
        wait_for(observed.started.is_set, 30, message="the doomed worker to start applying")
        healthy = Worker(
            exec_db_url,
            tmp_path / "healthy.log",
            queue="broker-crash",
            extra_env={"REDIS_URL": redis_server.url},
        )
        trigger.touch()
        redis_server.stop()  # both consumers lose the broker; the doomed one cannot come back
        redis_server.start()
        wait_for(
            lambda: b"Unrecoverable error" in doomed.log_path.read_bytes(),
            30,
            0.1,
            "the doomed worker's unrecoverable error",
        )
        assert not _apply_ended(run.id), "the apply phase ended before the worker failed"
        status = _wait_end(run.id)
        assert status == "succeeded", healthy.log_path.read_text()[-3000:]
        doomed_pid = f":{doomed.proc.pid}:"
        verify = [a for a in _actions(run.id) if a.phase == "verify"]
        assert verify and all(doomed_pid not in (a.worker or "") for a in verify), [
            a.worker for a in verify
        ]
        _assert_nothing_lost_or_repeated(deployment_id, observed, lab.node_names)
        wait_for(lambda: doomed.proc.poll() is not None, 30, 0.2, "the doomed worker to exit")
    finally:
        doomed.stop(graceful=False)
        if healthy is not None:
            healthy.stop(graceful=False)
