"""The load-balancer guide run whole on the lab's "farm" world through the step service with the
real worker (the operator's install, configuration and draining done on the lab in between), and
what the lab saw checked; shared by the guide's end-to-end tests and the farm deliverable's."""

from __future__ import annotations

from app.extensions import db
from app.guides import GUIDES
from app.models import Deployment
from tests.guides.load_balancer.farm_world import (
    GUIDE_KEY,
    clear,
    confirm_license,
    drain_all_but,
    farm_inputs,
    inject,
    install_nodes,
    new_farm_deployment,
    offered,
    retry,
)
from tests.lab_world import (
    failing_checks,
    outcome_text,
    run_prerequisites,
    save_all_inputs,
    start,
    start_world,
)

# Every step with remote work, in order (all but the Summary: test_lb_steps.py names them).
RUNNABLE = tuple(s.key for s in GUIDES[GUIDE_KEY].steps if s.runnable)


def keys(run) -> set[str]:
    return {c["key"] for c in failing_checks(run)}


def first_node_step(deployment_id, store, version, nodes):
    first = start(deployment_id, "first_node")
    assert first.status == "failed", outcome_text(first)
    assert keys(first) == {f"install:{nodes[0]}"}, outcome_text(first)
    steps = first.outcome["artifacts"]["manual_checklist"][nodes[0]]
    assert any("Licensing" in s for s in steps)
    install_nodes(store, version, [nodes[0]])
    unconfirmed = retry(deployment_id, "first_node")
    assert keys(unconfirmed) == {f"license:{nodes[0]}"}, outcome_text(unconfirmed)
    confirm_license(deployment_id, store)
    done = retry(deployment_id, "first_node")
    assert done.status == "succeeded", outcome_text(done)
    return done


def other_nodes_step(deployment_id, store, version, nodes, faults=()):
    missing = start(deployment_id, "other_nodes")
    assert missing.status == "failed", outcome_text(missing)
    assert keys(missing) == {f"install:{n}" for n in nodes[1:]}, outcome_text(missing)
    checklist = missing.outcome["artifacts"]["manual_checklist"]
    assert not any("Licensing" in s for s in checklist[nodes[1]])
    install_nodes(store, version, nodes[1:])
    if faults:
        inject(store, *faults)
        wrong = retry(deployment_id, "other_nodes")
        assert wrong.status == "failed", outcome_text(wrong)
        clear(store)
        install_nodes(store, version, nodes[1:])  # the operator reinstalls it correctly
        done = retry(deployment_id, "other_nodes")
        assert done.status == "succeeded", outcome_text(done)
        return wrong, done
    done = retry(deployment_id, "other_nodes")
    assert done.status == "succeeded", outcome_text(done)
    return None, done


def farm_test_rounds(deployment_id, store, nodes, cannot_reach: str | None = None):
    """Every round through the balancer: all in service, each node alone, all back."""
    run = start(deployment_id, "farm_test")
    assert run.status == "passed", outcome_text(run)  # waits for the first drain round
    assert keys(run) == set(), outcome_text(run)
    results = {"all": run}
    for node in nodes:
        fix = offered(run)
        assert fix.startswith(f"lb_round:{node}:"), fix
        drain_all_but(store, node)
        if cannot_reach == node:
            inject(store, f"balancer_cannot_reach:{node}")
            refused = retry(deployment_id, "farm_test", fix=fix)
            assert keys(refused) == {f"balancer:{node}"}, outcome_text(refused)
            assert offered(refused) == fix  # the same round again
            results["refused"] = refused
            clear(store)
        run = retry(deployment_id, "farm_test", fix=fix)
        assert run.status == "passed", outcome_text(run)
        assert keys(run) == set(), outcome_text(run)
        assert node in run.outcome["artifacts"]["reached"]
    fix = offered(run)
    assert fix == "lb_round:*:" + ",".join(nodes)
    drain_all_but(store, None)
    done = retry(deployment_id, "farm_test", fix=fix)
    assert done.status == "succeeded", outcome_text(done)
    results["done"] = done
    return results


def whole_guide(tmp_path, nodes, version, lab_calls):
    store, server = start_world(tmp_path, nodes, scenario="farm")
    try:
        deployment_id = new_farm_deployment(server, store, f"Farm {len(nodes)} nodes")
        save_all_inputs(deployment_id, farm_inputs(store, version))
        run_prerequisites(deployment_id)
        sql = start(deployment_id, "sql_database")
        assert sql.status == "succeeded", outcome_text(sql)
        first_node_step(deployment_id, store, version, nodes)
        other_nodes_step(deployment_id, store, version, nodes)
        host = start(deployment_id, "host_config")
        assert host.status == "succeeded", outcome_text(host)
        assert host.outcome["artifacts"]["changed"] == sorted(nodes)
        ip = start(deployment_id, "ip_detection")
        assert ip.status == "succeeded", outcome_text(ip)
        rounds = farm_test_rounds(deployment_id, store, nodes)
        deployment = db.session.get(Deployment, deployment_id)
        statuses = {s.step_key: s.status for s in deployment.steps if s.step_key != "summary"}
        assert statuses == dict.fromkeys(RUNNABLE, "done")
        assert deployment.status == "completed"
        state = store.read()
    finally:
        server.stop()
    # What the lab saw: the wizard changed only the host configuration, once per node.
    assert lab_calls.count("ams_set_host_config") == dict.fromkeys(nodes, 1)
    for node in state["nodes"].values():
        assert node["ams_host_config"]["host_name"] == state["balancer"]["fqdn"]
        assert node["ams_host_config"]["api_enabled"] is True
        assert "Failover-Clustering" not in [k for k, v in node["features"].items() if v]
    assert not lab_calls.of("ams_install_start")
    # The SQL step ran as the service account first, in a task, on every node.
    assert {c.auth for c in lab_calls.of("lb_sql_connection_test")} == {"task"}
    probes = lab_calls.of("lb_health_probe")
    assert {c.node for c in probes} == set(nodes)
    api = "/api/v3.0/health-check" if version.startswith("3.") else "/api/v1.0/health-check"
    assert api in lab_calls.of("lb_health_probe", nodes[-1])[-1].params["Paths"]
    return rounds
