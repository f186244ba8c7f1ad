"""Lab models of the role and failover scripts, and steps 5-6 driven against them."""

import pytest

from app.guides.cluster.cluster_role import STEP as ROLE_STEP
from app.guides.cluster.failover_test import STEP as FAILOVER_STEP
from app.lab.context import ScriptFailure
from app.lab.handlers import ams, cluster, failover, role
from app.lab.scenarios import install_ams
from tests.lab.cluster_world import all_inputs, configure_by_hand, ctx, drive, world

ROLE = {"Name": "AMSWEB", "StaticAddress": "10.20.0.51"}


def installed(*specs):
    """Cluster formed, AMS installed and configured on both nodes, no role yet."""
    store = world(*specs)
    cluster.cluster_create(
        ctx(store, auth="credssp", Name="AMSCLU", Node=["AMS1", "AMS2"], StaticAddress="10.20.0.50")
    )
    hints = store.state["suggested_inputs"]
    with store.transaction() as state:
        for node in state["nodes"].values():
            install_ams(node, hints["ams_version"], hints["gmsa"], hints["sql_connection_string"])
    configure_by_hand(store)
    return store


def test_role_create_makes_the_service_manual_and_runs_it_on_the_owner():
    store = installed()
    with pytest.raises(ScriptFailure, match="Access is denied"):
        role.role_create(ctx(store, **ROLE))
    created = role.role_create(ctx(store, auth="task", **ROLE))  # as task_run's logon runs it
    assert created["state"] == "Online" and created["owner"] == "AMS1"
    for name, status in (("AMS1", "Running"), ("AMS2", "Stopped")):
        service = store.state["nodes"][name]["services"]["lithnetams"]
        assert service["start_type"] == "Manual" and service["status"] == status
    found = role.role_detect(ctx(store, Name="AMSWEB"))
    assert found["roles"][0]["group"] == "AMSWEB" and found["roles"][0]["address"] == "10.20.0.51"
    with pytest.raises(ScriptFailure, match="already exists"):
        role.role_create(ctx(store, auth="credssp", **ROLE))


def test_move_changes_owner_and_service_and_honours_role_fails_on():
    store = installed("role_fails_on:AMS2")
    role.role_create(ctx(store, auth="credssp", **ROLE))
    moved = failover.failover_move(ctx(store, node="AMS2", Name="AMSWEB", Node="AMS2"))
    assert moved["state"] == "Failed" and "failed to come online" in moved["error"]
    assert store.state["nodes"]["AMS2"]["services"]["lithnetams"]["status"] == "Stopped"
    plain = role.role_diagnostics(ctx(store, node="AMS2", Name="AMSWEB"))
    assert not plain["cluster_log"] and "Access is denied" in plain["cluster_log_error"]
    diag = role.role_diagnostics(ctx(store, node="AMS2", auth="task", Name="AMSWEB"))
    assert diag["cluster_log"] and diag["events"][0]["level"] == "Error"
    back = failover.failover_move(ctx(store, Name="AMSWEB", Node="AMS1"))
    assert back["state"] == "Online"
    assert store.state["nodes"]["AMS1"]["services"]["lithnetams"]["status"] == "Running"


def test_probe_answers_only_through_a_working_owner():
    store = installed()
    role.role_create(ctx(store, auth="credssp", **ROLE))
    probe = failover.failover_probe(ctx(store, HostName="amsweb.corp.example.test"))
    assert probe["status_code"] == 200 and probe["service_status"] == "Running"
    assert (
        failover.failover_probe(ctx(store, HostName="nope.corp.example.test"))["status_code"]
        is None
    )
    with store.transaction() as state:
        state["nodes"]["AMS1"]["http_bindings"] = {}
    assert "unexpected error" in failover.failover_probe(ctx(store, HostName="amsweb"))["error"]


def test_role_step_then_failover_step_in_the_lab():
    store = installed()
    inputs = all_inputs(store)
    finish, ran = drive(ROLE_STEP, store, inputs)
    assert ran == ["detect", "create", "verify"] and finish.status == "done", finish.checks
    finish, ran = drive(ROLE_STEP, store, inputs)
    assert ran == ["detect", "verify"] and finish.artifacts["method"] == "adopted"
    finish, ran = drive(FAILOVER_STEP, store, inputs)
    assert finish.status == "done", finish.checks
    assert [r["health_status"] for r in finish.artifacts["failover_table"]] == [200, 200]


def test_failover_step_reports_the_failing_node_and_restores_the_role():
    store = installed("role_fails_on:AMS2")
    inputs = all_inputs(store)
    drive(ROLE_STEP, store, inputs)
    finish, ran = drive(FAILOVER_STEP, store, inputs)
    assert ran[-1] == "restore" and finish.failed_nodes == ("AMS2",)
    group = store.state["cluster"]["groups"]["AMSWEB"]
    assert group["owner"] == "AMS1" and group["state"] == "Online"


def test_role_step_failing_on_first_node_collects_diagnostics():
    store = installed("role_fails_on:AMS1")
    finish, ran = drive(ROLE_STEP, store, all_inputs(store))
    assert ran[-1] == "diagnostics" and finish.status == "needs_attention"
    assert finish.artifacts["diagnostics"]["AMS1"]["events"]
    assert ams.ams_detect(ctx(store, node="AMS2"))["service"]["start_type"] == "Manual"
