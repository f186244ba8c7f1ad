"""Several nodes interrupted at once: one pause naming them all, after every action.interrupted."""

from datetime import timedelta

from app.execution.worker import reaper
from app.extensions import db
from app.models import NodeAction, utcnow
from tests.execution.harness import events_of, running_run, seed_deployment


def _run_with_actions(deployment_id: int, beats: dict[str, timedelta]) -> dict[str, int]:
    """A running run with one running action per node, heartbeats `beats[node]` ago."""
    now = utcnow()
    heartbeats = {node: now - ago for node, ago in beats.items()}
    _, actions = running_run(
        deployment_id, now - timedelta(hours=1), heartbeats, "apply", "exec_apply"
    )
    return actions


def test_every_stale_node_is_named_and_the_pause_comes_last(exec_ctx, lab):
    deployment_id = seed_deployment(lab)
    stale, fresh = timedelta(hours=1), timedelta(seconds=0)
    actions = _run_with_actions(deployment_id, {"node1": stale, "node2": stale, "node3": fresh})

    assert sorted(reaper.reap_stale_actions()) == sorted([actions["node1"], actions["node2"]])

    kinds = [(e.kind, e.node_name) for e in events_of(deployment_id)]
    assert kinds == [
        ("action.interrupted", "node1"),
        ("action.interrupted", "node2"),
        ("step.paused", None),
    ]
    reason = events_of(deployment_id, "step.paused")[0].payload["reason"]
    assert "exec_apply on node1" in reason and "exec_apply on node2" in reason
    assert "node3" not in reason
    db.session.expire_all()
    assert db.session.get(NodeAction, actions["node3"]).status == "running"
    db.session.commit()
    assert reaper.reap_stale_actions() == []  # a second sweep finds nothing new to end
