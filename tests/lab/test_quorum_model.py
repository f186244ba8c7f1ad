"""Lab models of quorum_get / quorum_set, and the Quorum step driven against them."""

import pytest

from app.guides.cluster.quorum import STEP
from app.lab.context import ScriptFailure
from app.lab.handlers import cluster, quorum
from tests.lab.cluster_world import all_inputs, ctx, drive, world


def clustered(*specs):
    store = world(*specs)
    cluster.cluster_create(
        ctx(store, auth="credssp", Name="AMSCLU", Node=["AMS1", "AMS2"], StaticAddress="10.20.0.50")
    )
    return store


def test_file_share_witness_round_trip():
    store = clustered()
    assert quorum.quorum_get(ctx(store))["witness_kind"] is None
    quorum.quorum_set(ctx(store, WitnessType="file_share", SharePath="\\\\fs1\\WITNESS"))
    after = quorum.quorum_get(ctx(store))
    assert after["witness_kind"] == "File Share Quorum Witness"
    assert after["share_path"] == "\\\\FS1\\witness" and after["node_count"] == 2


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({}, "The network name cannot be found"),
        (
            {"\\\\FS9\\x": {"server": "FS9", "writable_by": ["CORP\\Backup Operators"]}},
            "Access is denied",
        ),
    ],
)
def test_file_share_must_exist_and_be_writable(patch, message):
    store = clustered()
    store.state["file_shares"] = patch
    with pytest.raises(ScriptFailure, match=message):
        quorum.quorum_set(ctx(store, WitnessType="file_share", SharePath="\\\\FS9\\x"))


def test_cloud_and_none_and_missing_disk():
    store = clustered()
    quorum.quorum_set(ctx(store, WitnessType="cloud", AccountName="acct", AccessKey="s3cr3t-key"))
    assert quorum.quorum_get(ctx(store))["cloud_account"] == "acct"
    assert "s3cr3t-key" not in str(store.state)
    quorum.quorum_set(ctx(store, WitnessType="none"))
    assert quorum.quorum_get(ctx(store))["witness_kind"] is None
    with pytest.raises(ScriptFailure, match="could not be found"):
        quorum.quorum_set(ctx(store, WitnessType="disk", DiskName="Cluster Disk 1"))


def test_quorum_without_cluster_fails_like_the_cmdlet():
    with pytest.raises(ScriptFailure, match="cluster service is not running"):
        quorum.quorum_get(ctx(world()))


def test_step_sets_then_recognises_the_witness():
    store = clustered()
    finish, ran = drive(STEP, store, all_inputs(store))
    assert ran == ["detect", "apply", "verify"] and finish.status == "done"
    finish, ran = drive(STEP, store, all_inputs(store))
    assert ran == ["detect"] and finish.artifacts["changed"] is False


def test_step_cloud_witness_gets_the_key_from_the_vault():
    store = clustered()
    inputs = all_inputs(store, quorum={"witness_type": "cloud", "cloud_account": "amswitness"})
    finish, _ = drive(STEP, store, inputs)
    assert finish.status == "done"
    assert store.state["cluster"]["quorum"]["witness"]["account"] == "amswitness"
