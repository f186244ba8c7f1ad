"""A redelivered run_node_action task never runs the script of an action that is not queued.

Celery delivers a task again when its worker dies before acking; the `queued -> running` claim is
what keeps the script from running twice. Here the task body runs in this process, the lab and
database are real, and every script invocation is counted.
"""

import pytest
from sqlalchemy import update

from app.execution import service, tasks
from app.extensions import db
from app.models import NodeAction, utcnow
from app.remote.runner import NodeSession
from tests.execution.harness import Recorded, events_of, seed_deployment

# How an action looks once another worker claimed it, or once it ended.
STATES = {
    "running": {"worker": "other-host:4242:Thread-3", "heartbeat_at": True},
    "succeeded": {"result": {"data": {"echo": "done"}, "had_errors": False}},
    "failed": {"error_category": "script_error", "error_message": "Exit 1."},
    "interrupted": {"error_category": "interrupted", "error_message": "No heartbeat."},
    "cancelled": {"error_category": "cancelled", "error_message": "Cancelled."},
}


@pytest.fixture
def scripts_run(monkeypatch) -> list[str]:
    """The scripts NodeSession.run was asked to run (the real runner still runs them)."""
    calls, real = [], NodeSession.run

    def counting(session, script, *args, **kwargs):
        calls.append(script)
        return real(session, script, *args, **kwargs)

    monkeypatch.setattr(NodeSession, "run", counting)
    return calls


def _queued_action(lab) -> tuple[int, int]:
    """(deployment id, id of the one queued action of a fresh one-node echo run)."""
    deployment_id = seed_deployment(lab, "exec-echo", nodes=["node1"])
    queue = Recorded()
    service.start_step_run(deployment_id, "exec_echo", None, queue)
    return deployment_id, queue.actions.pop()


def _set_state(action_id: int, status: str) -> None:
    now = utcnow()
    values = {"status": status, "started_at": now, "try_count": 1, **STATES[status]}
    if values.pop("heartbeat_at", None):
        values["heartbeat_at"] = now
    if status != "running":
        values["finished_at"] = now
    db.session.execute(update(NodeAction).where(NodeAction.id == action_id).values(**values))
    db.session.commit()


def _snapshot(action_id: int) -> tuple:
    db.session.expire_all()
    a = db.session.get(NodeAction, action_id)
    row = (a.status, a.worker, a.try_count, a.started_at, a.heartbeat_at, a.finished_at, a.result)
    db.session.commit()
    return row


def test_a_queued_action_is_claimed_and_run_once(exec_ctx, lab, scripts_run):
    deployment_id, action_id = _queued_action(lab)
    assert tasks.run_node_action.run(action_id) == "done"
    assert scripts_run == ["exec_echo"]
    status, _, try_count, *_ = _snapshot(action_id)
    assert (status, try_count) == ("succeeded", 1)
    assert [e.kind for e in events_of(deployment_id, "node.started")] == ["node.started"]


@pytest.mark.parametrize("status", list(STATES))
def test_a_redelivered_task_does_not_run_an_action_that_is_not_queued(
    exec_ctx, lab, scripts_run, status
):
    deployment_id, action_id = _queued_action(lab)
    _set_state(action_id, status)
    before, events_before = _snapshot(action_id), events_of(deployment_id)

    assert tasks.run_node_action.run(action_id) == "not-claimed"

    assert scripts_run == []
    assert _snapshot(action_id) == before
    assert [e.id for e in events_of(deployment_id)] == [e.id for e in events_before]
