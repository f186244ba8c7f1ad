"""Quorum.advance() with fabricated results: already set, apply, even count without witness."""

import pytest

from app.guides.cluster.quorum import STEP
from tests.guides.cluster_views import failed, make_view, ok, run_until_finish

KEY = "quorum"
NONE = {"quorum_type": "Majority", "witness_kind": None, "node_count": 2}
FSW = {
    "quorum_type": "Majority",
    "witness_kind": "File Share Quorum Witness",
    "witness_resource": "File Share Witness",
    "share_path": "\\\\fs1\\witness\\",
    "node_count": 2,
}
CLOUD = {
    "quorum_type": "Majority",
    "witness_kind": "Cloud Witness",
    "cloud_account": "amswitness",
    "cloud_endpoint": "core.windows.net",
    "node_count": 2,
}


def world(before, after=None, apply_error=None):
    def answer(phase, a):
        if a.script == "quorum_set":
            return (
                failed(a.node, a.script, apply_error) if apply_error else ok(a.node, a.script, {})
            )
        return ok(a.node, a.script, before if phase.name == "detect" else (after or before))

    return answer


@pytest.mark.parametrize(
    ("inputs", "before", "secrets"),
    [
        ({}, FSW, ()),
        ({"witness_type": "cloud", "cloud_account": "AMSWITNESS"}, CLOUD, ()),
        ({"witness_type": "none"}, {**NONE, "node_count": 3}, ()),
    ],
)
def test_already_configured_as_requested_changes_nothing(inputs, before, secrets):
    finish, ran = run_until_finish(STEP, make_view(KEY, secrets=secrets, **inputs), world(before))
    assert ran == ["detect"]
    assert finish.status == "done" and finish.artifacts["changed"] is False


def test_file_share_witness_is_applied_and_verified():
    view = make_view(KEY)
    finish, ran = run_until_finish(STEP, view, world(NONE, FSW))
    assert ran == ["detect", "apply", "verify"]
    apply = STEP.advance(make_view(KEY, {"detect": view.results["detect"]}))
    assert apply.changes_state
    assert apply.actions[0].params == {"WitnessType": "file_share", "SharePath": "\\\\FS1\\witness"}
    assert finish.status == "done"


def test_cloud_witness_takes_the_key_from_the_vault_only():
    view = make_view(
        KEY, secrets={"cloud_access_key"}, witness_type="cloud", cloud_account="amswitness"
    )
    phase = STEP.advance(
        make_view(
            KEY,
            {"detect": {"AMS1": ok("AMS1", "quorum_get", NONE)}},
            **{"witness_type": "cloud", "cloud_account": "amswitness"},
            secrets={"cloud_access_key"},
        )
    )
    action = phase.actions[0]
    assert action.secrets == {"AccessKey": "cloud_access_key"}
    assert "AccessKey" not in action.params and "cloud_access_key" not in action.params
    finish, _ = run_until_finish(STEP, view, world(NONE, CLOUD))
    assert finish.status == "done"


def test_cloud_witness_without_key_asks_for_it():
    view = make_view(KEY, witness_type="cloud", cloud_account="amswitness")
    finish, ran = run_until_finish(STEP, view, world(NONE))
    assert ran == ["detect"] and finish.status == "needs_attention"
    assert finish.checks[0].key == "cloud_access_key"


def test_no_witness_with_even_node_count_needs_attention():
    finish, ran = run_until_finish(STEP, make_view(KEY, witness_type="none"), world(FSW))
    assert ran == ["detect"] and finish.status == "needs_attention"
    assert finish.checks[0].key == "witness_required"


def test_share_error_is_reported_with_remediation():
    error = "Set-ClusterQuorum : ... The network name cannot be found."
    finish, ran = run_until_finish(STEP, make_view(KEY), world(NONE, apply_error=error))
    assert ran == ["detect", "apply"]
    assert finish.status == "needs_attention" and finish.checks[0].evidence == error
    assert "share permissions" in finish.checks[0].remediation


def test_verification_mismatch_needs_attention():
    finish, _ = run_until_finish(STEP, make_view(KEY), world(NONE, NONE))
    assert finish.status == "needs_attention"
    assert any(c.key == "quorum" for c in finish.checks)


def test_preview_names_all_phases():
    assert [p.name for p in STEP.preview(make_view(KEY))] == ["detect", "apply", "verify"]
