"""A PostgreSQL restart while a step runs: the worker keeps the node output it could not write and
writes it once the database is back (each line once, in order), the action's end survives it, and
output that could not be kept is counted on the action and shown to the operator.

The database is a private cluster of its own (tests/services.py), so these tests run the same in
both CI suites; the broker is the suite's (Redis or the filesystem)."""

from __future__ import annotations

import time

import pytest
from flask_migrate import upgrade
from sqlalchemy import select

from app import create_app
from app.execution import service
from app.extensions import db
from app.models import Event, NodeAction, output_lost_notice
from config import TestConfig
from tests.conftest import login
from tests.execution.harness import (
    QUEUE,
    ROOT,
    SETTINGS,
    USER_PASSWORD,
    QueueEnqueue,
    Worker,
    events_of,
    make_user,
    run_status,
    seed_deployment,
    wait_for,
)
from tests.services import PrivatePostgres

pytestmark = [pytest.mark.slow, pytest.mark.services]  # a PostgreSQL of its own
TERMINAL = ("succeeded", "failed", "cancelled", "interrupted")
OUTAGE_SECONDS = 2  # how long PostgreSQL stays down: the outage itself, not a wait for something
WAITING = "the database is unreachable; its output waits"


@pytest.fixture(scope="module")
def postgres():
    server = PrivatePostgres()  # fails (never skips) without PostgreSQL's server binaries
    yield server
    server.remove()


@pytest.fixture(scope="module")
def outage_app(postgres):
    """The application on the private cluster, migrated to head."""
    settings = {
        "SQLALCHEMY_DATABASE_URI": postgres.url,
        "CELERY_QUEUE": f"{QUEUE}-outage",
        **SETTINGS,
    }
    app = create_app(TestConfig, settings)
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def outage_ctx(outage_app):
    with outage_app.app_context():
        yield outage_app
        db.session.remove()


def _worker(app, tmp_path, **settings) -> Worker:
    return Worker(
        app.config["SQLALCHEMY_DATABASE_URI"],
        tmp_path / "worker.log",
        queue=app.config["CELERY_QUEUE"],
        settings={**SETTINGS, **settings},
    )


def _output(deployment_id: int, node: str) -> list[str]:
    """The node's output lines as the event log has them, in sequence order."""
    rows = db.session.scalars(
        select(Event.payload)
        .where(
            Event.deployment_id == deployment_id,
            Event.kind == "node.output",
            Event.node_name == node,
        )
        .order_by(Event.seq)
    ).all()
    db.session.commit()
    return [payload["text"] for payload in rows]


def _restart(postgres: PrivatePostgres) -> None:
    """Stop PostgreSQL as a restart does (every session ended), keep it down, start it again."""
    db.session.remove()  # nothing of this process is in a transaction when the server goes
    postgres.stop("fast")
    time.sleep(OUTAGE_SECONDS)
    postgres.start()
    db.engine.dispose()


def _ended(run_id: int) -> str:
    return wait_for(lambda: (s := run_status(run_id)) in TERMINAL and s, 90, 0.2, "the run to end")


def _actions(run_id: int) -> list[NodeAction]:
    db.session.expire_all()
    rows = db.session.scalars(select(NodeAction).where(NodeAction.step_run_id == run_id)).all()
    db.session.commit()
    return list(rows)


def _lines(count: int) -> list[str]:
    return [f"line {n:04d}" for n in range(1, count + 1)]


def test_output_streamed_through_a_restart_is_written_once_and_in_order(
    outage_ctx, postgres, lab, tmp_path
):
    worker = _worker(outage_ctx, tmp_path)
    try:
        nodes = ["node1", "node2"]
        inputs = {"count": 60, "seconds": 6}
        deployment_id = seed_deployment(lab, "exec-count", inputs, nodes=nodes)
        run_id = service.start_step_run(
            deployment_id, "exec_count", None, QueueEnqueue(outage_ctx, worker.queue)
        ).id
        for node in nodes:
            wait_for(lambda n=node: len(_output(deployment_id, n)) >= 5, 30, 0.05, "output")
        _restart(postgres)
        status = _ended(run_id)
        log = worker.log_path.read_text()
        assert status == "succeeded", log[-3000:]
        assert WAITING in log, "the outage missed the streaming: nothing waited"
        for node in nodes:
            assert _output(deployment_id, node) == _lines(60), node
        assert [a.output_lost for a in _actions(run_id)] == [0, 0]
        finished = events_of(deployment_id, "node.finished")
        assert len(finished) == 2 and not any("output_lost" in e.payload for e in finished)
    finally:
        worker.stop(graceful=False)


def test_an_action_ending_while_the_database_is_down_is_recorded_once_it_returns(
    outage_ctx, postgres, lab, tmp_path
):
    worker = _worker(outage_ctx, tmp_path)
    try:
        deployment_id = seed_deployment(lab, "exec-echo", {"seconds": 1}, nodes=["node1"])
        run_id = service.start_step_run(
            deployment_id, "exec_echo", None, QueueEnqueue(outage_ctx, worker.queue)
        ).id
        wait_for(lambda: events_of(deployment_id, "node.started"), 30, 0.05, "node.started")
        _restart(postgres)  # the script (1 s) ends while PostgreSQL is down (2 s)
        status = _ended(run_id)
        log = worker.log_path.read_text()
        assert status == "succeeded", log[-3000:]
        assert "Database unreachable while recording the end of action" in log
        kinds = [e.kind for e in events_of(deployment_id)]
        assert kinds.count("node.finished") == 1 and kinds.count("step.finished") == 1
    finally:
        worker.stop(graceful=False)


def test_output_beyond_the_buffer_is_counted_on_the_action_and_shown(
    outage_ctx, postgres, lab, tmp_path
):
    worker = _worker(outage_ctx, tmp_path, EVENT_BUFFER_RECORDS=5)
    try:
        deployment_id = seed_deployment(
            lab, "exec-count", {"count": 60, "seconds": 6}, nodes=["node1"]
        )
        run_id = service.start_step_run(
            deployment_id, "exec_count", None, QueueEnqueue(outage_ctx, worker.queue)
        ).id
        wait_for(lambda: len(_output(deployment_id, "node1")) >= 5, 30, 0.05, "output")
        _restart(postgres)  # about 20 lines come while it is down; 5 can wait
        status = _ended(run_id)
        log = worker.log_path.read_text()
        assert status == "succeeded", log[-3000:]
        (action,) = _actions(run_id)
        written = _output(deployment_id, "node1")
        assert action.output_lost > 0
        assert len(written) + action.output_lost == 60
        assert written == sorted(set(written)) and set(written) <= set(_lines(60))
        (finished,) = events_of(deployment_id, "node.finished")
        notice = output_lost_notice(action.output_lost)
        assert finished.payload["output_lost"] == action.output_lost
        assert finished.payload["output_lost_notice"] == notice
        assert notice in log
        _assert_shown(outage_ctx, deployment_id, notice)
    finally:
        worker.stop(graceful=False)


def _assert_shown(app, deployment_id: int, notice: str) -> None:
    """The step page's action details and the printable report say what was lost."""
    make_user("outage-viewer")
    client = app.test_client()
    assert login(client, "outage-viewer", USER_PASSWORD).status_code in (302, 303)
    html = notice.replace("'", "&#39;")
    step = client.get(f"/deployments/{deployment_id}/steps/exec_count")
    assert html in step.get_data(as_text=True)
    report = client.get(f"/deployments/{deployment_id}/report")
    assert html in report.get_data(as_text=True)
