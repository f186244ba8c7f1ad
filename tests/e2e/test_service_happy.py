"""Whole installs through the step service (start_step_run / resolve_pause) with the real worker.

2 nodes with a manual install, 3 nodes with the unattended install (Client.copy of the installer,
checksum checked in the lab) and no witness, 4 nodes with a file share witness verified in the lab.
Every destructive script must have run exactly once.
"""

import hashlib
from pathlib import Path

import pytest

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
    start_world,
)

pytestmark = pytest.mark.slow


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


def test_two_nodes_manual_install(tmp_path, e2e, lab_calls):
    store, server = start_world(tmp_path, ["AMS1", "AMS2"])
    try:
        _, finals = happy_path(store, server, lab_calls)
    finally:
        server.stop()
    assert lab_calls.count("quorum_set") == {"AMS1": 1}
    assert store.read()["cluster"]["quorum"]["witness"] == {
        "kind": "file_share",
        "path": "\\\\FS1\\witness",
    }
    assert finals["base_cluster"].outcome["artifacts"]["method"] == "scheduled_task"
    report = finals["base_cluster"].outcome["artifacts"]["test_cluster_report"]
    assert report["outcome"] == "passed_unselected"  # storage tests skipped: no shared disks


def test_three_nodes_unattended_install_and_no_witness(tmp_path, e2e, lab_calls):
    installers = Path(e2e.config["INSTANCE_DIR"]) / "installers"
    result = e2e.test_cli_runner().invoke(args=["lab", "installer"])
    assert result.exit_code == 0, result.output
    name = "LithnetAccessManagerService-2.1.1069.0-x64.exe"
    digest = hashlib.sha256((installers / name).read_bytes()).hexdigest()
    store, server = start_world(tmp_path, ["AMS1", "AMS2", "AMS3"])
    try:
        deployment_id, finals = happy_path(
            store, server, lab_calls, mode="unattended", witness="none", installer=name
        )
    finally:
        server.stop()
    state = store.read()
    for node in state["nodes"].values():
        copied = node["files"]["C:\\Windows\\Temp\\" + name]
        assert copied["sha256"] == digest
        assert copied["size"] == (installers / name).stat().st_size
        assert [p["running"] for p in node["processes"].values()] == [False]
    assert state["cluster"]["quorum"]["witness"] is None
    assert not lab_calls.of("quorum_set")  # odd node count, no witness asked: nothing changed
    quorum = finals["quorum"].outcome
    assert "nothing was changed" in quorum["summary"]
    assert any(c["key"] == "witness_optional" for c in quorum["checks"])
    # The copy reported progress and the checksum through the live log.
    from tests.lab_world import events_of

    texts = [str(e.payload) for e in events_of(deployment_id, "node.information")]
    assert sum("checksum verified" in t for t in texts) == 3, texts[:5]


def test_four_nodes_with_a_file_share_witness(tmp_path, e2e, lab_calls):
    store, server = start_world(tmp_path, ["AMS1", "AMS2", "AMS3", "AMS4"])
    try:
        _, finals = happy_path(store, server, lab_calls)
    finally:
        server.stop()
    quorum = store.read()["cluster"]["quorum"]
    assert quorum == {
        "type": "Majority",
        "witness": {"kind": "file_share", "path": "\\\\FS1\\witness"},
    }
    assert lab_calls.count("quorum_set") == {"AMS1": 1}
    [apply] = lab_calls.of("quorum_set")
    assert apply.params == {"WitnessType": "file_share", "SharePath": "\\\\FS1\\witness"}
    verified = finals["quorum"].outcome
    assert verified["artifacts"]["changed"] is True
    after = verified["artifacts"]["quorum"]
    assert after["witness_kind"] == "File Share Quorum Witness"
    assert after["share_path"] == "\\\\FS1\\witness"
    assert after["node_count"] == 4
    assert verified["summary"].startswith("Quorum witness configured: File Share Quorum Witness")
