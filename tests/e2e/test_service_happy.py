"""Whole installs through the step service (start_step_run / resolve_pause) with the real worker.

2 nodes with a manual install, 3 nodes with the unattended install (Client.copy of the installer,
checksum checked in the lab) and no witness, 4 nodes with a file share witness verified in the lab.
Every destructive script must have run exactly once.
"""

import hashlib
from pathlib import Path

import pytest

from tests.e2e.cluster_run import happy_path
from tests.lab_world import start_world

pytestmark = pytest.mark.slow


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
