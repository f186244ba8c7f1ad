"""The whole load-balancer guide on the strict lab's "farm" world with the real Celery worker:
2 nodes on 2.1, 3 nodes on 3.0, and 2 nodes on 3.0 with faults (SQL unreachable from one node, a
node installed with another account and certificate, a failing health check, a balancer that
cannot reach a node). Each step runs through the step service exactly as the screens start it;
the operator's manual work (install, configuration tool, draining at the balancer) is done on the
lab state in between."""

from __future__ import annotations

import pytest

from tests.guides.load_balancer.farm_run import first_node_step, keys, other_nodes_step, whole_guide
from tests.guides.load_balancer.farm_world import (
    V2,
    V3,
    clear,
    drain_all_but,
    farm_inputs,
    inject,
    new_farm_deployment,
    offered,
    retry,
)
from tests.lab_world import outcome_text, run_prerequisites, save_all_inputs, start, start_world

pytestmark = pytest.mark.slow


def test_two_nodes_on_2_1(tmp_path, e2e, lab_calls):
    rounds = whole_guide(tmp_path, ["AMS1", "AMS2"], V2, lab_calls)
    assert rounds["done"].outcome["artifacts"]["reached"] == ["AMS1", "AMS2"]


def test_three_nodes_on_3_0(tmp_path, e2e, lab_calls):
    rounds = whole_guide(tmp_path, ["AMS1", "AMS2", "AMS3"], V3, lab_calls)
    assert rounds["done"].outcome["artifacts"]["reached"] == ["AMS1", "AMS2", "AMS3"]
    # No request under test went out from the node under test (no hairpin).
    senders = {c.node for c in lab_calls.of("lb_balancer_probe")}
    assert senders == {"AMS1", "AMS2"}


def test_faults_on_two_nodes(tmp_path, e2e, lab_calls):
    nodes = ["AMS1", "AMS2"]
    store, server = start_world(tmp_path, nodes, scenario="farm")
    try:
        deployment_id = new_farm_deployment(server, store, "Farm with faults")
        save_all_inputs(deployment_id, farm_inputs(store, V3))
        run_prerequisites(deployment_id)
        # SQL Server cannot be reached from AMS2.
        inject(store, "sql_unreachable:AMS2")
        sql = start(deployment_id, "sql_database")
        assert sql.status == "failed", outcome_text(sql)
        assert keys(sql) == {"sql_open:AMS2"}, outcome_text(sql)
        clear(store)
        sql = retry(deployment_id, "sql_database")
        assert sql.status == "succeeded", outcome_text(sql)
        first_node_step(deployment_id, store, V3, nodes)
        # AMS2 installed with another account and bound to another certificate.
        wrong, _ = other_nodes_step(
            deployment_id,
            store,
            V3,
            nodes,
            faults=("account_mismatch:AMS2", "certificate_mismatch:AMS2"),
        )
        assert {"account:AMS2", "binding:AMS2"} <= keys(wrong), outcome_text(wrong)
        assert "same_account:AMS2" not in keys(wrong)  # one check per difference
        host = start(deployment_id, "host_config")
        assert host.status == "succeeded", outcome_text(host)
        assert start(deployment_id, "ip_detection").status == "succeeded"
        # AMS2's health check fails: the farm test stops at the nodes.
        inject(store, "health_fails:AMS2")
        sick = start(deployment_id, "farm_test")
        assert sick.status == "failed", outcome_text(sick)
        assert keys(sick) == {"health/health-check:AMS2", "health/api/v3.0/health-check:AMS2"}, (
            outcome_text(sick)
        )
        assert "503" in outcome_text(sick)
        assert not lab_calls.of("lb_balancer_probe")  # no balancer round on a sick farm
        clear(store)
        healthy = retry(deployment_id, "farm_test")
        assert healthy.status == "passed" and keys(healthy) == set(), outcome_text(healthy)
        # The balancer cannot reach AMS2: the round with only AMS2 in service fails.
        fix = offered(healthy)
        drain_all_but(store, "AMS1")
        one = retry(deployment_id, "farm_test", fix=fix)
        assert one.status == "passed" and keys(one) == set(), outcome_text(one)
        fix = offered(one)
        assert fix == "lb_round:AMS2:AMS1"
        drain_all_but(store, "AMS2")
        inject(store, "balancer_cannot_reach:AMS2")
        refused = retry(deployment_id, "farm_test", fix=fix)
        assert refused.status == "failed", outcome_text(refused)  # a refused round is a failure
        assert keys(refused) == {"balancer:AMS2"}, outcome_text(refused)
        assert "503" in outcome_text(refused)
        assert offered(refused) == fix
        clear(store)
        two = retry(deployment_id, "farm_test", fix=fix)
        assert two.status == "passed" and keys(two) == set(), outcome_text(two)
        drain_all_but(store, None)
        done = retry(deployment_id, "farm_test", fix=offered(two))
        assert done.status == "succeeded", outcome_text(done)
    finally:
        server.stop()
