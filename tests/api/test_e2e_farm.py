"""The load-balancer guide driven only through the JSON API, with the real Celery worker, on the
strict lab's farm world (two nodes, Access Manager 3.0): the deployment is created with its
topology, each step's inputs are put, every pause is answered with a decision (the operator's
manual install and the balancer's draining are done on the lab in between), and the deployment
completes; its status, events and export hold no password."""

import pytest

from tests.execution.harness import LAB_PASSWORD
from tests.guides.load_balancer.farm_world import (
    GUIDE_KEY,
    V3,
    drain_all_but,
    farm_inputs,
    install_nodes,
)
from tests.lab_world import run_step, start_world, wait_settled

pytestmark = pytest.mark.slow

NODES = ["AMS1", "AMS2"]


@pytest.fixture
def farm(tmp_path):
    store, server = start_world(tmp_path, NODES, scenario="farm")
    yield store, server
    server.stop()


def _failing(settled: dict) -> set[str]:
    checks = (settled["runs"][0]["outcome"] or {}).get("checks") or []
    return {c["key"] for c in checks if c["status"] == "fail"}


def _round_fix(settled: dict) -> str:
    checks = (settled["runs"][0]["outcome"] or {}).get("checks") or []
    fixes = {c["fix"]["id"] for c in checks if (c.get("fix") or {}).get("id", "").startswith("lb_")}
    assert len(fixes) == 1, checks
    return fixes.pop()


def _retry(call, deployment_id: int, step: str, fix: str | None = None) -> dict:
    body = {"decision": "retry"} | ({"fix": fix} if fix else {})
    call("POST", f"/deployments/{deployment_id}/steps/{step}/decision", body, expect=202)
    return wait_settled(call, deployment_id, step)


def test_the_farm_guide_through_the_api(farm, lab_api):
    store, server = farm
    call = lab_api
    nodes = [
        {"name": n, "host": "127.0.0.1", "port": server.ports[n], "auth": "ntlm"}
        for n in server.node_names
    ]
    body = {
        "name": "Farm through the API",
        "domain_fqdn": store.read()["domain"]["fqdn"],
        "nodes": nodes,
        "guide_key": GUIDE_KEY,
    }
    deployment_id = call("POST", "/deployments", body, expect=201)["id"]
    created = call("GET", f"/deployments/{deployment_id}")
    assert created["guide"] == GUIDE_KEY
    assert [s["key"] for s in created["steps"]][:3] == [
        "prerequisites",
        "sql_database",
        "first_node",
    ]
    for step, inputs in farm_inputs(store, V3).items():
        inputs = dict(inputs)
        inputs.pop("license_confirmed", None)
        inputs.pop("settings_confirmed", None) if step != "ip_detection" else None
        call("PUT", f"/deployments/{deployment_id}/steps/{step}/inputs", inputs)

    prerequisites = run_step(call, deployment_id, "prerequisites")
    if prerequisites["status"] != "done":  # Windows as shipped: the AD module is offered as a fix
        fix = next(
            c["fix"]["id"]
            for c in prerequisites["runs"][0]["outcome"]["checks"]
            if c["status"] == "fail" and c.get("fix")
        )
        prerequisites = run_step(call, deployment_id, "prerequisites", fix=fix)
    assert prerequisites["status"] == "done", prerequisites["runs"][0]["outcome"]["summary"]
    assert run_step(call, deployment_id, "sql_database")["status"] == "done"

    # The first node: installed and licensed by hand, then confirmed in its inputs.
    first = run_step(call, deployment_id, "first_node")
    assert first["status"] == "needs_attention" and _failing(first) == {"install:AMS1"}
    install_nodes(store, V3, ["AMS1"])
    unconfirmed = _retry(call, deployment_id, "first_node")
    assert _failing(unconfirmed) == {"license:AMS1"}
    confirmed = farm_inputs(store, V3)["first_node"] | {"license_confirmed": True}
    call("PUT", f"/deployments/{deployment_id}/steps/first_node/inputs", confirmed)
    assert _retry(call, deployment_id, "first_node")["status"] == "done"

    other = run_step(call, deployment_id, "other_nodes")
    assert _failing(other) == {"install:AMS2"}
    install_nodes(store, V3, ["AMS2"])
    assert _retry(call, deployment_id, "other_nodes")["status"] == "done"
    assert run_step(call, deployment_id, "host_config")["status"] == "done"
    assert run_step(call, deployment_id, "ip_detection")["status"] == "done"

    # The farm test: every node in service, then each node alone at the balancer, then all back.
    settled = run_step(call, deployment_id, "farm_test")
    for node in NODES:
        fix = _round_fix(settled)
        assert fix.startswith(f"lb_round:{node}:"), fix
        drain_all_but(store, node)
        settled = _retry(call, deployment_id, "farm_test", fix)
        assert settled["status"] == "needs_attention" and not _failing(settled)
    fix = _round_fix(settled)
    assert fix == "lb_round:*:AMS1,AMS2"
    drain_all_but(store, None)
    done = _retry(call, deployment_id, "farm_test", fix)
    assert done["status"] == "done", done["runs"][0]["outcome"]["summary"]

    deployment = call("GET", f"/deployments/{deployment_id}")
    assert deployment["status"] == "completed"
    assert deployment["secrets_held"] == []
    events = call("GET", f"/deployments/{deployment_id}/events?after=0&limit=1000")
    export = call("GET", f"/deployments/{deployment_id}/export")
    assert export["deployment"]["guide"] == GUIDE_KEY or GUIDE_KEY in str(export)
    assert LAB_PASSWORD not in str(events) and LAB_PASSWORD not in str(export)
    assert {state["ams_host_config"]["host_name"] for state in store.read()["nodes"].values()} == {
        store.read()["balancer"]["fqdn"]
    }
