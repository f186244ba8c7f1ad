"""Issue 21, item 9: `flask lab show` lists the active faults, and the lab's simulated evidence is
consistent: times are what the lab really took, and no service runs as a gMSA whose password the
node cannot retrieve yet (KDS root key not usable)."""

import time

from app.lab import scenarios
from app.lab.handlers import cluster, failover, role
from app.lab.store import LabStore
from tests.lab.cluster_world import configure_by_hand, ctx, world

ROLE = {"Name": "AMSWEB", "StaticAddress": "10.20.0.51"}


def test_lab_show_lists_every_active_fault_with_what_it_does(app):
    runner = app.test_cli_runner()
    assert runner.invoke(args=["lab", "reset"]).exit_code == 0
    assert "faults: none" in runner.invoke(args=["lab", "show"]).output
    added = runner.invoke(args=["lab", "fault", "add", "kds_too_new", "slow:AMS1:2"])
    assert added.exit_code == 0, added.output
    output = runner.invoke(args=["lab", "show"]).output
    assert "faults (2 active" in output
    # A domain fault lives only in the applied list: it is shown all the same.
    assert "kds_too_new" in output and "usable in 9 hours" in output
    assert "slow:AMS1:2" in output and "takes SECONDS longer" in output
    runner.invoke(args=["lab", "fault", "clear"])
    assert "faults: none" in runner.invoke(args=["lab", "show"]).output
    state = LabStore(app.config["INSTANCE_DIR"] / "lab" / "state.json").read()
    assert state["faults"]["applied"] == []


def _cluster(*specs):
    store = world(*specs)
    cluster.cluster_create(
        ctx(store, auth="credssp", Name="AMSCLU", Node=["AMS1", "AMS2"], StaticAddress="10.20.0.50")
    )
    return store


def _install(store):
    hints = store.state["suggested_inputs"]
    with store.transaction() as state:
        for node in state["nodes"].values():
            scenarios.install_ams(
                node,
                hints["ams_version"],
                hints["gmsa"],
                hints["sql_connection_string"],
                state=state,
            )
    configure_by_hand(store)


def test_reported_times_are_what_the_lab_took():
    store = _cluster()
    _install(store)
    started = time.monotonic()
    created = role.role_create(ctx(store, auth="credssp", **ROLE))
    moved = failover.failover_move(ctx(store, node="AMS2", Name="AMSWEB", Node="AMS2"))
    probe = failover.failover_probe(ctx(store, node="AMS2", HostName="amsweb"))
    took = time.monotonic() - started
    assert probe["status_code"] == 200
    for seconds in (created["elapsed_seconds"], moved["elapsed_seconds"]):
        assert 0 <= seconds <= round(took, 1) + 0.1
    assert 0 <= probe["elapsed_ms"] <= took * 1000 + 100


def test_no_service_runs_as_a_gmsa_before_the_kds_key_is_usable():
    store = _cluster("kds_too_new")
    _install(store)
    for node in store.state["nodes"].values():
        service = node["services"][scenarios.AMS_SERVICE]
        assert service["status"] == "Stopped"
        assert any(e["id"] == 7038 for e in node["event_log"])
    created = role.role_create(ctx(store, auth="credssp", **ROLE))
    assert created["state"] == "Failed"
    owner = store.state["nodes"]["AMS1"]
    assert owner["services"][scenarios.AMS_SERVICE]["status"] == "Stopped"
    assert "logon failure" in owner["event_log"][-1]["message"]


def test_with_a_usable_key_the_same_install_runs():
    store = _cluster()
    _install(store)
    created = role.role_create(ctx(store, auth="credssp", **ROLE))
    assert created["state"] == "Online"
    assert store.state["nodes"]["AMS1"]["services"][scenarios.AMS_SERVICE]["status"] == "Running"
