"""The cluster guide run whole through the step service (start_step_run / resolve_pause) with the
real worker, the operator's manual work done on the lab in between, and what the lab saw checked;
shared by the step-service and browser end-to-end tests."""

from app.extensions import db
from app.lab import scenarios
from app.models import Deployment
from tests.lab_world import (
    STEPS,
    configure_by_hand,
    confirm_license,
    decide,
    failing_checks,
    inputs_for,
    new_deployment,
    outcome_text,
    run_prerequisites,
    save_all_inputs,
    start,
)


def run_install_ams(
    deployment_id: int, store, mode: str, node_names: list[str], installer: str = ""
):
    """The install step as the operator lives it: pause with a checklist, work, Retry."""
    first = start(deployment_id, "install_ams")
    assert first.status == "failed", outcome_text(first)
    text = outcome_text(first)
    if mode == "manual":
        assert "must be installed on " + ", ".join(node_names) in text
        assert "Start with the first node" in text
        checklist = first.outcome["artifacts"]["manual_checklist"]
        assert set(checklist) == set(node_names)
        assert any("Licensing page" in s for s in checklist[node_names[0]])
        assert not any("Licensing page" in s for s in checklist[node_names[1]])
        # The operator installs, but has not opened the configuration tool yet: not trusted.
        with store.transaction() as state:
            hints = state["suggested_inputs"]
            for node in state["nodes"].values():
                scenarios.install_ams(
                    node, hints["ams_version"], hints["gmsa"], hints["sql_connection_string"]
                )
        half = decide(deployment_id, "install_ams")
        assert half.status == "failed", outcome_text(half)
        keys = {c["key"].split(":")[0] for c in failing_checks(half)}
        assert {"configured", "binding", "license"} <= keys, outcome_text(half)
    else:
        # The installer ran unattended; the configuration tool is still the operator's job.
        keys = {c["key"].split(":")[0] for c in failing_checks(first)}
        assert {"configured", "binding", "license"} <= keys, text
        assert "install" not in keys
    configure_by_hand(store)
    licensed = decide(deployment_id, "install_ams")
    assert [c["key"] for c in failing_checks(licensed)] == [f"license:{node_names[0]}"], (
        outcome_text(licensed)
    )
    confirm_license(deployment_id, store, mode, installer)
    done = decide(deployment_id, "install_ams")
    assert done.status == "succeeded", outcome_text(done)
    return [first, done]


def happy_path(store, server, lab_calls, mode="manual", witness="file_share", installer=""):
    """Every step in order; returns {step: final run}."""
    nodes = list(server.node_names)
    deployment_id = new_deployment(server, store, name=f"E2E {len(nodes)} nodes")
    inputs = inputs_for(store, mode, installer)
    if witness != "file_share":
        inputs["quorum"] = {"witness_type": witness}
    save_all_inputs(deployment_id, inputs)
    finals = {}
    for step in STEPS:
        if step == "install_ams":
            finals[step] = run_install_ams(deployment_id, store, mode, nodes, installer)[-1]
            continue
        if step == "prerequisites":
            finals[step] = run_prerequisites(deployment_id)[-1]
            continue
        run = start(deployment_id, step)
        assert run.status == "succeeded", (step, outcome_text(run))
        finals[step] = run
    deployment = db.session.get(Deployment, deployment_id)
    assert deployment.status == "completed"
    assert {
        s.step_key: s.status for s in deployment.steps if s.step_key != "summary"
    } == dict.fromkeys(STEPS, "done")
    # The cluster the wizard built, as the lab sees it.
    state = store.read()
    cluster = state["cluster"]
    assert cluster["name"] == "AMSCLU"
    assert cluster["nodes"] == dict.fromkeys(nodes, "Up")
    role = cluster["groups"]["AMSWEB"]
    assert role["state"] == "Online" and role["owner"] == nodes[-1]  # the failover test's last move
    for node in state["nodes"].values():
        assert node["services"]["lithnetams"]["start_type"] == "Manual"
    # Destructive scripts ran once (cluster, role) or once per node (installer).
    # Each ran once, inside a scheduled task (the second hop), never straight over WinRM.
    assert lab_calls.count("cluster_create") == {nodes[0]: 1}
    assert lab_calls.count("role_create") == {nodes[0]: 1}
    assert lab_calls.count("cluster_validate") == {nodes[0]: 1}
    for script in ("cluster_create", "role_create", "cluster_validate", "prereq_domain_facts"):
        assert {c.auth for c in lab_calls.of(script)} == {"task"}, script
    assert lab_calls.count("prereq_install_feature") == {nodes[0]: 1}  # the AD module, once
    expected_start = dict.fromkeys(nodes, 1) if mode == "unattended" else {}
    assert lab_calls.count("ams_install_start") == expected_start
    assert lab_calls.count("failover_move") == dict.fromkeys(nodes, 1)
    failover = finals["failover_test"].outcome["artifacts"]["failover_table"]
    assert [r["node"] for r in failover] == nodes
    assert all(r["passed"] and r["health_status"] == 200 for r in failover)
    return deployment_id, finals
