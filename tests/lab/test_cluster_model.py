"""Lab models of the base-cluster scripts, and the BaseCluster step driven against them."""

import pytest

from app.guides.cluster.base_cluster import STEP
from app.lab.context import ScriptFailure
from app.lab.handlers import cluster as model
from tests.lab.cluster_world import all_inputs, ctx, drive, world

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


def test_scheduled_task_avoids_the_double_hop_but_needs_credentials():
    store = world()
    with pytest.raises(ScriptFailure, match="user name or password is incorrect"):
        model.cluster_create_task(ctx(store, **PARAMS))
    result = model.cluster_create_task(ctx(store, TaskUser="CORP\\op", TaskPassword="x", **PARAMS))
    assert result["method"] == "scheduled_task" and store.state["cluster"]["name"] == "AMSCLU"


def test_new_cluster_refuses_nodes_without_the_feature_and_existing_members():
    with pytest.raises(ScriptFailure, match="Failover Clustering feature is not installed"):
        model.cluster_create(ctx(world("feature_missing:AMS2"), auth="credssp", **PARAMS))
    with pytest.raises(ScriptFailure, match="already a member"):
        model.cluster_create(ctx(world(scenario="existing_cluster"), auth="credssp", **PARAMS))


@pytest.mark.parametrize(
    ("fault", "outcome"),
    [(None, "passed"), ("test_cluster_warn", "warnings"), ("test_cluster_fail", "failed")],
)
def test_validate_honours_the_test_cluster_faults(fault, outcome):
    store = world(*([fault] if fault else []))
    c = ctx(store, Node=["AMS1", "AMS2"])
    result = model.cluster_validate(c)
    assert result["outcome"] == outcome
    assert result["report_html"].startswith("<html>")
    assert result["report_path"] in store.state["nodes"]["AMS1"]["files"]
    assert any(kind == "warning" and "Test Result" in str(v) for kind, v in c.records)


def test_step_creates_the_cluster_in_the_lab():
    store = world()
    finish, ran = drive(STEP, store, all_inputs(store))
    assert ran == ["detect", "validate", "create", "verify"]
    assert finish.status == "done" and finish.artifacts["method"] == "scheduled_task"
    assert finish.artifacts["test_cluster_report"]["outcome"] == "passed"


def test_step_over_credssp_needs_a_credssp_session():
    store = world()
    inputs = all_inputs(store, base_cluster={"double_hop": "credssp"})
    finish, _ = drive(STEP, store, inputs)
    assert finish.status == "needs_attention" and "scheduled task" in finish.checks[0].remediation
    finish, _ = drive(STEP, store, inputs, auth="credssp")
    assert finish.status == "done" and "Disable-WSManCredSSP" in finish.summary


def test_step_adopts_an_existing_cluster_and_stops_on_failed_validation():
    store = world(scenario="existing_cluster")
    finish, ran = drive(STEP, store, all_inputs(store))
    assert ran == ["detect"] and finish.artifacts["method"] == "adopted"
    store = world("test_cluster_fail")
    finish, ran = drive(STEP, store, all_inputs(store))
    assert ran == ["detect", "validate"] and store.state["cluster"] is None
