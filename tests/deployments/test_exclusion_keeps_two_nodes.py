"""Excluding nodes never leaves a deployment without high availability (issue 21, point 4): the
role and the failover test need two nodes. Edge values: 3 nodes exclude 1 is accepted, 2 nodes
exclude 1 and 3 nodes exclude 2 are refused with a message that says why and what to do."""

import pytest
from sqlalchemy import select

from app.execution import service, vault
from app.execution.machine.decisions import exclusion_refusal
from app.extensions import db
from app.models import Deployment, Event, StepRun
from tests.conftest import login
from tests.execution.harness import Recorded
from tests.handover.helpers import DEPLOYMENT, deployment, user

EARLIER = ("prerequisites", "base_cluster", "quorum", "install_ams", "cluster_role")


def paused_failover(app, names: list[str]) -> tuple[int, int]:
    """A deployment on `names` whose failover test waits for a decision; (deployment, actor)."""
    actor = user(app, "alice", "operator")
    nodes = [{**DEPLOYMENT["nodes"][0], "name": n, "port": 55985 + i} for i, n in enumerate(names)]
    dep_id = deployment(app, "alice", nodes=nodes)
    with app.app_context():
        dep = db.session.get(Deployment, dep_id)
        dep.step("cluster_role").inputs = {"access_point_name": "AMSWEB"}
        for key in EARLIER:
            dep.step(key).status = "done"
        dep.step("failover_test").status = "needs_attention"
        dep.status, dep.current_step = "paused", "failover_test"
        db.session.add(
            StepRun(
                deployment_id=dep_id,
                step_key="failover_test",
                attempt=1,
                status="failed",
                outcome={"status": "needs_attention", "failed_nodes": [names[-1]]},
            )
        )
        db.session.commit()
        vault.store_credentials(dep_id, "CORP\\alice", "a-password", owner_id=actor)
    return dep_id, actor


def _excluded_state(dep_id: int) -> tuple[list[str], list[str]]:
    db.session.expire_all()
    dep = db.session.get(Deployment, dep_id)
    kinds = db.session.scalars(select(Event.kind).where(Event.deployment_id == dep_id)).all()
    return [n.name for n in dep.nodes if n.excluded], [k for k in kinds if k == "nodes.excluded"]


def test_three_nodes_exclude_one_is_accepted_and_the_test_runs_on_two(app):
    dep_id, actor = paused_failover(app, ["AMS1", "AMS2", "AMS3"])
    with app.app_context():
        run = service.resolve_pause(
            dep_id, "failover_test", "exclude", "NIC failed", ["AMS3"], actor, Recorded()
        )
        assert run is not None and run.attempt == 2
        assert _excluded_state(dep_id) == (["AMS3"], ["nodes.excluded"])
        dep = db.session.get(Deployment, dep_id)
        assert [n.name for n in dep.active_nodes] == ["AMS1", "AMS2"]
        assert dep.nodes[2].exclude_reason == "NIC failed"


@pytest.mark.parametrize(
    ("names", "exclude", "left"),
    [
        (["AMS1", "AMS2"], ["AMS2"], "only AMS1"),
        (["AMS1", "AMS2", "AMS3"], ["AMS2", "AMS3"], "only AMS1"),
    ],
)
def test_an_exclusion_that_leaves_fewer_than_two_nodes_is_refused(app, names, exclude, left):
    dep_id, actor = paused_failover(app, names)
    with app.app_context():
        with pytest.raises(service.StepBlocked) as refused:
            service.resolve_pause(
                dep_id, "failover_test", "exclude", "NIC failed", exclude, actor, Recorded()
            )
        message = str(refused.value)
        assert f"would leave {left} in this deployment" in message
        assert "at least 2 nodes to fail over" in message and "Retry" in message
        assert _excluded_state(dep_id) == ([], [])  # nothing half-saved
        dep = db.session.get(Deployment, dep_id)
        assert dep.step("failover_test").status == "needs_attention"
        runs = db.session.scalars(select(StepRun).where(StepRun.deployment_id == dep_id)).all()
        assert len(runs) == 1  # no new attempt


def test_excluding_every_node_is_refused(app):
    dep_id, actor = paused_failover(app, ["AMS1", "AMS2"])
    with app.app_context(), pytest.raises(service.StepBlocked, match="would leave no node"):
        service.resolve_pause(
            dep_id, "failover_test", "exclude", "gone", ["AMS1", "AMS2"], actor, Recorded()
        )


def test_the_rule_counts_nodes_already_excluded(app):
    names = ["AMS1", "AMS2", "AMS3"]
    dep_id, _ = paused_failover(app, names)
    with app.app_context():
        dep = db.session.get(Deployment, dep_id)
        assert exclusion_refusal(dep, [dep.nodes[2]]) is None  # 3 -> 2: allowed
        dep.nodes[2].excluded = True  # excluded earlier
        refusal = exclusion_refusal(dep, [dep.nodes[1]])  # 2 -> 1: refused
        assert refusal is not None and "Excluding AMS2 would leave only AMS1" in refusal
        db.session.rollback()


@pytest.mark.parametrize(
    ("names", "offered"), [(["AMS1", "AMS2"], False), (["AMS1", "AMS2", "AMS3"], True)]
)
def test_the_pause_panel_offers_exclusion_only_above_two_nodes(app, client, names, offered):
    """Install Access Manager pauses on its last node: with two nodes, excluding it would be
    refused, so the panel does not offer it; with three, it does, for the failed node."""
    dep_id, _ = paused_failover(app, names)
    with app.app_context():
        dep = db.session.get(Deployment, dep_id)
        dep.step("install_ams").status = "needs_attention"
        dep.step("failover_test").status = "not_started"
        dep.current_step = "install_ams"
        run = db.session.scalar(select(StepRun).where(StepRun.deployment_id == dep_id))
        run.step_key = "install_ams"
        db.session.commit()
    login(client, "alice")
    page = client.get(f"/deployments/{dep_id}/steps/install_ams").get_data(as_text=True)
    assert "This step is paused" in page
    assert ('value="exclude"' in page) is offered
    assert (f'name="nodes" value="{names[-1]}"' in page) is offered
    assert ("Reason (required to skip, exclude or abort)" in page) is offered
