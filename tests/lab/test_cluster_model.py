"""Lab models of the base-cluster scripts, and the BaseCluster step driven against them."""

import pytest

from app.guides.cluster import validation
from app.guides.cluster.base_cluster import STEP
from app.lab.context import ScriptFailure
from app.lab.handlers import cluster as model
from app.steps import NodeInfo
from app.wizard import route
from tests.lab.cluster_world import all_inputs, ctx, drive, world
from tests.lab.fake_ctx import run_action

PARAMS = {"Name": "AMSCLU", "Node": ["AMS1", "AMS2"], "StaticAddress": "10.20.0.50"}


def test_detect_before_and_after_creation():
    store = world()
    assert model.cluster_detect(ctx(store))["exists"] is False
    model.cluster_create(ctx(store, auth="credssp", **PARAMS))
    seen = model.cluster_detect(ctx(store, node="AMS2"))
    assert seen["exists"] and seen["name"] == "AMSCLU" and seen["address"] == "10.20.0.50"
    assert [n["state"] for n in seen["nodes"]] == ["Up", "Up"]
    assert store.state["nodes"]["AMS2"]["services"]["ClusSvc"]["status"] == "Running"
    assert store.state["cluster"]["quorum"] == {"type": "Majority", "witness": None}


@pytest.mark.parametrize("auth", ["negotiate", "ntlm", "basic"])
def test_new_cluster_fails_with_access_denied_without_credssp(auth):
    store = world()
    with pytest.raises(ScriptFailure, match="Access is denied"):
        model.cluster_create(ctx(store, auth=auth, **PARAMS))
    assert store.state["cluster"] is None


def test_scheduled_task_avoids_the_second_hop_but_needs_credentials():
    store = world()
    node = NodeInfo("AMS1", "ams1", 0)
    action = route.as_operator(node, "cluster_create", PARAMS, label="Create")
    assert action.script == "task_run" and set(action.secrets) == {"TaskUser", "TaskPassword"}
    without = type(action)("AMS1", action.script, action.params)  # no credentials for the task
    refused = run_action(store, without)
    assert not refused.ok and "user name and password" in refused.error_message
    assert store.state["cluster"] is None
    result = run_action(store, action)
    assert result.ok and store.state["cluster"]["name"] == "AMSCLU"


def test_new_cluster_refuses_nodes_without_the_feature_and_existing_members():
    with pytest.raises(ScriptFailure, match="Failover Clustering feature is not installed"):
        model.cluster_create(ctx(world("feature_missing:AMS2"), auth="credssp", **PARAMS))
    with pytest.raises(ScriptFailure, match="already a member"):
        model.cluster_create(ctx(world(scenario="existing_cluster"), auth="credssp", **PARAMS))


@pytest.mark.parametrize(
    ("fault", "outcome"),
    [
        (None, "passed_unselected"),
        ("test_cluster_warn", "warnings"),
        ("test_cluster_fail", "failed"),
    ],
)
def test_validate_honours_the_test_cluster_faults(fault, outcome):
    store = world(*([fault] if fault else []))
    c = ctx(store, auth="task", Node=["AMS1", "AMS2"])
    result = model.cluster_validate(c)
    assert validation.reading(result)["outcome"] == outcome
    assert result["report_html"].startswith("<html>")
    assert result["report_path"] in store.state["nodes"]["AMS1"]["files"]
    assert any(kind == "warning" and "Test Result" in str(v) for kind, v in c.records)


def test_validate_over_a_plain_session_cannot_reach_the_other_nodes():
    with pytest.raises(ScriptFailure, match="Access is denied"):
        model.cluster_validate(ctx(world(), Node=["AMS1", "AMS2"]))


def test_step_creates_the_cluster_in_a_scheduled_task():
    store = world()
    finish, ran = drive(STEP, store, all_inputs(store))
    assert ran == ["detect", "validate", "create", "verify"]
    assert finish.status == "done" and finish.artifacts["method"] == "scheduled_task"
    # The lab's Test-Cluster skips the storage tests of a cluster without shared disks.
    assert finish.artifacts["test_cluster_report"]["outcome"] == "passed_unselected"


def test_step_over_credssp_runs_directly():
    store = world()
    finish, _ = drive(STEP, store, all_inputs(store), auth="credssp")
    assert finish.status == "done" and finish.artifacts["method"] == "credssp"
    assert "Disable-WSManCredSSP" in finish.summary


def test_step_adopts_an_existing_cluster_and_stops_on_failed_validation():
    store = world(scenario="existing_cluster")
    finish, ran = drive(STEP, store, all_inputs(store))
    assert ran == ["detect"] and finish.artifacts["method"] == "adopted"
    store = world("test_cluster_fail")
    finish, ran = drive(STEP, store, all_inputs(store))
    assert ran == ["detect", "validate"] and store.state["cluster"] is None
