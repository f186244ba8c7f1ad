"""A step on three lab nodes through the real worker: ordered events, crash recovery, cancel."""

import time

from sqlalchemy import select

from app.execution import service
from app.execution.worker import reaper
from app.extensions import db
from app.models import Deployment, NodeAction, StepRun
from tests.execution.harness import (
    QUEUE,
    QueueEnqueue,
    Worker,
    events_of,
    run_status,
    seed_deployment,
    wait_for,
)

TERMINAL = ("succeeded", "failed", "cancelled", "interrupted")


def _wait_run(run_id: int, timeout: float = 60) -> str:
    return wait_for(
        lambda: (s := run_status(run_id)) in TERMINAL and s, timeout, message=f"run {run_id} to end"
    )


def test_step_on_three_nodes_completes_with_events_in_order(exec_ctx, lab, worker, observed):
    deployment_id = seed_deployment(lab, inputs={"seconds": 0.6})
    run = service.start_step_run(deployment_id, "exec_step", None)
    assert _wait_run(run.id) == "succeeded"

    events = events_of(deployment_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    kinds = [e.kind for e in events]
    assert kinds[0] == "step.started" and kinds[-1] in ("step.finished", "deployment.completed")
    phases = [e.payload["phase"] for e in events if e.kind == "phase.started"]
    assert phases == ["detect", "apply", "verify"]
    for node in lab.node_names:
        mine = [
            e.kind
            for e in events
            if e.node_name == node and e.kind in ("node.started", "node.finished")
        ]
        assert mine == ["node.started", "node.finished"] * 3
        assert any(e.kind == "node.progress" and e.node_name == node for e in events)
        assert any(e.kind == "node.information" and e.node_name == node for e in events)
    # every phase.started precedes its nodes' events, every phase.finished follows them
    for name in phases:
        started = next(
            e.seq for e in events if e.kind == "phase.started" and e.payload["phase"] == name
        )
        finished = next(
            e.seq for e in events if e.kind == "phase.finished" and e.payload["phase"] == name
        )
        ids = {a["id"] for a in next(e for e in events if e.seq == started).payload["actions"]}
        own = [e.seq for e in events if e.node_action_id in ids]
        assert started < min(own) and max(own) < finished
    assert observed.applies == dict.fromkeys(lab.node_names, 1)
    deployment = db.session.get(Deployment, deployment_id)
    assert deployment.step("exec_step").status == "done"
    assert deployment.status == "completed"


def test_kill9_mid_action_is_reaped_and_resume_does_not_repeat(
    exec_ctx, lab, worker, observed, exec_db_url, tmp_path
):
    deployment_id = seed_deployment(lab, inputs={"seconds": 2})
    victim = Worker(exec_db_url, tmp_path / "victim.log", queue=f"{QUEUE}-victim")
    try:
        run = service.start_step_run(
            deployment_id, "exec_step", None, QueueEnqueue(exec_ctx, victim.queue)
        )
        wait_for(observed.started.is_set, 30, message="the lab to start applying")
        victim.kill9()
    finally:
        victim.stop()

    def reaped():
        return reaper.reap_stale_actions() or run_status(run.id) == "interrupted"

    wait_for(reaped, 20, interval=0.5, message="the reaper to mark the action interrupted")
    db.session.expire_all()
    assert db.session.get(StepRun, run.id).status == "interrupted"
    deployment = db.session.get(Deployment, deployment_id)
    assert deployment.step("exec_step").status == "needs_attention"
    assert deployment.status == "paused"
    interrupted = db.session.scalars(
        select(NodeAction).where(NodeAction.status == "interrupted")
    ).all()
    assert interrupted and all(a.error_category == "interrupted" for a in interrupted)
    assert any(e.kind == "action.interrupted" for e in events_of(deployment_id))
    db.session.commit()

    # The killed worker's applies (2 s each) go on in the lab: let them finish or be dropped.
    wait_for(lambda: observed.applying == 0, 10, message="the orphaned lab work to end")
    before = dict(observed.applies)
    resumed = reaper.resume(deployment_id, "exec_step", None)
    assert resumed.attempt == 2
    assert _wait_run(resumed.id) == "succeeded"
    assert observed.applies == dict.fromkeys(lab.node_names, 1), (
        f"resume repeated work (before: {before})"
    )
    state = lab.store.read()["nodes"]
    assert all(state[n]["apply_count"] == 1 for n in lab.node_names)


def test_cancel_stops_the_lab_action(exec_ctx, lab, worker, observed):
    deployment_id = seed_deployment(lab, inputs={"seconds": 30})
    run = service.start_step_run(deployment_id, "exec_step", None)
    wait_for(observed.started.is_set, 30, message="the lab to start applying")
    started = time.monotonic()
    assert service.cancel(run.id) == "cancelling"
    assert _wait_run(run.id, 20) == "cancelled"
    assert observed.stopped.wait(5), "the lab never saw the stop"
    assert time.monotonic() - started < 10
    assert observed.applies == {}
    deployment = db.session.get(Deployment, deployment_id)
    assert deployment.step("exec_step").status == "needs_attention"
    kinds = [e.kind for e in events_of(deployment_id)]
    assert "step.cancelled" in kinds and "step.paused" in kinds
