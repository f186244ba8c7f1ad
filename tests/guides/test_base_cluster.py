"""BaseCluster.advance() with fabricated results: create, adopt, refuse, validation, double hop."""

import pytest

from app.guides.cluster.base_cluster import STEP
from app.wizard.route import inner_script
from tests.guides.cluster_views import (
    answering,
    check_keys,
    failed,
    make_view,
    ok,
    run_until_finish,
)

KEY = "base_cluster"


def no_cluster(node):
    return {"computer": node, "feature_installed": True, "exists": False, "nodes": []}


def member(node, name="AMSCLU", members=("AMS1", "AMS2"), state="Up", address="10.20.0.50"):
    return {
        "computer": node,
        "feature_installed": True,
        "exists": True,
        "name": name,
        "address": address,
        "nodes": [{"name": m, "state": state} for m in members],
    }


VERDICTS = {
    "passed": "ClusterApproved",
    "warnings": "ClusterConditionallyApproved",
    "failed": "ClusterNotApproved",
}


def validation(outcome="passed", issues=()):
    """cluster_validate's output: Test-Cluster's warnings as Windows writes them, and the report."""
    lines = [f"{i['test']}: {i['message']}" for i in issues]
    return {
        "warnings": [*lines, f"Test Result: HadUnselectedTests, {VERDICTS[outcome]}"],
        "report_path": "C:\\Windows\\Cluster\\Reports\\r.htm",
        "report_html": "<html>report</html>",
        "report_truncated": False,
    }


def fresh_world(validation_data=None, create_error=None):
    """Answers for nodes that form no cluster until the create phase ran."""
    created = {"done": False}

    def answer(phase, action):
        script = inner_script(action.script, action.params)
        if script == "cluster_detect":
            return ok(
                action.node,
                "cluster_detect",
                member(action.node) if created["done"] else no_cluster(action.node),
            )
        if script == "cluster_validate":
            return ok(action.node, "cluster_validate", validation_data or validation())
        if create_error:
            return failed(action.node, action.script, create_error, "access_denied")
        created["done"] = True
        return ok(action.node, action.script, {"name": "AMSCLU", "nodes": []})

    return answer


def test_fresh_nodes_are_validated_then_clustered_in_a_scheduled_task():
    view = make_view(KEY)
    finish, ran = run_until_finish(STEP, view, fresh_world())
    assert ran == ["detect", "validate", "create", "verify"]
    create = STEP.advance(make_view(KEY, {k: view.results[k] for k in ran[:2]}))
    action = create.actions[0]
    assert create.changes_state and action.script == "task_run"
    assert action.params == {
        "ScriptName": "cluster_create",
        "Parameters": {"Name": "AMSCLU", "Node": ["AMS1", "AMS2"], "StaticAddress": "10.20.0.50"},
        "TimeoutSeconds": 1200,
    }
    validate = STEP.advance(make_view(KEY, {"detect": view.results["detect"]})).actions[0]
    assert (validate.script, validate.params["ScriptName"]) == ("task_run", "cluster_validate")
    assert action.secrets == {"TaskUser": "winrm_username", "TaskPassword": "winrm_password"}
    assert finish.status == "done"
    assert finish.artifacts["method"] == "scheduled_task"
    assert finish.artifacts["test_cluster_report"]["html"] == "<html>report</html>"
    assert "Disable-WSManCredSSP" not in finish.summary
    assert by_key(finish)["validation_outcome"].title == (
        "Cluster validation passed with unselected tests"
    )


def by_key(finish):
    return {c.key: c for c in finish.checks}


def test_credssp_path_reminds_to_disable_credssp():
    view = make_view(KEY, auth="credssp")
    finish, ran = run_until_finish(STEP, view, fresh_world())
    create = STEP.advance(make_view(KEY, {k: view.results[k] for k in ran[:2]}, auth="credssp"))
    assert (create.actions[0].script, create.actions[0].secrets) == ("cluster_create", {})
    assert finish.status == "done"
    assert finish.artifacts["method"] == "credssp"
    assert "Disable-WSManCredSSP -Role Server" in finish.summary
    assert ran == ["detect", "validate", "create", "verify"]


def test_validation_can_be_skipped():
    _, ran = run_until_finish(STEP, make_view(KEY, run_validation=False), fresh_world())
    assert ran == ["detect", "create", "verify"]


def test_existing_cluster_of_these_nodes_is_adopted_without_any_change():
    answer = answering(member)
    finish, ran = run_until_finish(STEP, make_view(KEY), answer)
    assert ran == ["detect"]
    assert finish.status == "done"
    assert finish.artifacts["method"] == "adopted"


@pytest.mark.parametrize(
    ("data", "expected_hint"),
    [
        (lambda n: member(n, name="OTHERCLU"), "Use the existing cluster's name"),
        (
            lambda n: member(n, members=("AMS1", "AMS2", "AMS3")),
            "Remove or exclude the extra nodes",
        ),
    ],
)
def test_a_cluster_that_is_not_the_requested_one_stops_the_step(data, expected_hint):
    answer = answering(data)
    finish, ran = run_until_finish(STEP, make_view(KEY), answer)
    assert ran == ["detect"]
    assert finish.status == "needs_attention"
    assert set(finish.failed_nodes) == {"AMS1", "AMS2"}
    assert expected_hint in finish.checks[0].remediation


def test_partly_formed_cluster_asks_for_the_missing_node():
    def answer(phase, a):
        return ok(
            a.node,
            a.script,
            member(a.node, members=("AMS1",)) if a.node == "AMS1" else no_cluster(a.node),
        )

    finish, ran = run_until_finish(STEP, make_view(KEY), answer)
    assert ran == ["detect"] and finish.status == "needs_attention"
    assert "Add-ClusterNode -Name AMS2" in finish.checks[0].remediation


def test_missing_feature_stops_before_validation():
    answer = answering(lambda n: {**no_cluster(n), "feature_installed": n == "AMS1"})
    finish, ran = run_until_finish(STEP, make_view(KEY), answer)
    assert ran == ["detect"]
    assert check_keys(finish) == {"feature:AMS2"}


def test_validation_failure_stops_and_keeps_the_report():
    issue = {
        "test": "Network - Validate IP Configuration",
        "severity": "failure",
        "message": "The test failed.",
    }
    finish, ran = run_until_finish(STEP, make_view(KEY), fresh_world(validation("failed", [issue])))
    assert ran == ["detect", "validate"]
    assert finish.status == "needs_attention"
    assert finish.artifacts["test_cluster_report"]["issues"] == [issue]
    assert finish.artifacts["test_cluster_report"]["outcome"] == "failed"


def test_validation_warnings_are_shown_but_do_not_stop():
    issue = {
        "test": "Network - Validate Network Communication",
        "severity": "warning",
        "message": "The test reported some warnings..",
    }
    finish, _ = run_until_finish(STEP, make_view(KEY), fresh_world(validation("warnings", [issue])))
    assert finish.status == "done"
    assert check_keys(finish, "warn") == {"validation:0", "validation_outcome"}


def test_double_hop_failure_explains_the_alternatives():
    error = "New-Cluster : Access is denied. (Exception from HRESULT: 0x80070005 (E_ACCESSDENIED))"
    finish, ran = run_until_finish(
        STEP, make_view(KEY, auth="credssp"), fresh_world(create_error=error)
    )
    assert ran == ["detect", "validate", "create"]
    assert finish.status == "needs_attention" and finish.failed_nodes == ("AMS1",)
    assert "scheduled task" in finish.checks[0].remediation


def test_unreachable_node_during_detection():
    def answer(phase, a):
        return (
            failed(a.node, a.script, "Cannot reach", "unreachable")
            if a.node == "AMS2"
            else ok(a.node, a.script, no_cluster(a.node))
        )

    finish, ran = run_until_finish(STEP, make_view(KEY), answer)
    assert ran == ["detect"] and finish.failed_nodes == ("AMS2",)


def test_node_down_after_creation_needs_attention():
    def answer(phase, a):
        if phase.name == "verify":
            return ok(a.node, a.script, member(a.node, state="Down"))
        return fresh_world()(phase, a)

    finish, _ = run_until_finish(STEP, make_view(KEY, run_validation=False), answer)
    assert finish.status == "needs_attention"
    assert check_keys(finish) == {"node_state:AMS1", "node_state:AMS2"}


def test_preview_lists_every_phase_and_names_secrets_only():
    phases = STEP.preview(make_view(KEY))
    assert [p.name for p in phases] == ["detect", "validate", "create", "verify"]
    create = phases[2].actions[0]
    assert create.script == "task_run"
    assert create.secrets == {"TaskUser": "winrm_username", "TaskPassword": "winrm_password"}
    assert "TaskPassword" not in create.params
