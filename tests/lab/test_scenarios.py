"""The simulated world: the default state, built-in scenarios and every fault spec."""

import copy
import json
from datetime import UTC, datetime, timedelta

import pytest

from app.lab import scenarios

NODES = ["AMS1", "AMS2"]
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SPECS = [
    "unreachable:AMS2",
    "auth_failure:AMS1",
    "slow:AMS1:5",
    "reboot:AMS1:prereq_node_facts",
    "crash:AMS1:prereq_node_facts",
    "kds_missing",
    "kds_too_new",
    "gmsa_missing",
    "gmsa_delegable",
    "gmsa_not_allowed:AMS2",
    "feature_missing:AMS1",
    "sql_express",
    "sql_unreachable:AMS2",
    "sql_no_database",
    "sql_no_login",
    "no_stored_passwords:AMS1",
    "no_batch_logon:AMS2",
    "batch_logon_gmsa:AMS1",
    "ad_module:AMS2",
    "version_mismatch:AMS2",
    "version_mismatch:AMS2:2.0.1601.0",
    "old_dc",
    "test_cluster_warn",
    "test_cluster_fail",
    "role_fails_on:AMS2",
    "pending_reboot:AMS1",
]


@pytest.fixture
def state():
    return scenarios.default_state(NODES, NOW)


def test_default_state_is_plain_json_and_reproducible(state):
    assert json.loads(json.dumps(state)) == state
    assert scenarios.default_state(NODES, NOW) == state


def test_default_state_is_the_happy_path(state):
    assert state["domain"]["fqdn"] == "corp.example.test"
    assert state["domain"]["netbios"] == "CORP"
    gmsa = state["domain"]["gmsas"]["svc-ams$"]
    assert gmsa["principals_allowed"] == ["AMS1$", "AMS2$"]
    assert gmsa["account_not_delegated"] is True
    key = state["domain"]["kds_root_keys"][0]
    assert scenarios.kds_usable_at(key) < NOW
    assert state["cluster"] is None
    assert state["sql"]["engine_edition"] == 3
    assert "AccessManager" in state["sql"]["databases"]
    assert "CORP\\svc-ams$" in state["sql"]["logins"]
    assert set(state["installers"]) == {"2.1.1069.0", "3.0.1638.0"}
    for index, (name, node) in enumerate(state["nodes"].items()):
        assert node["features"]["Failover-Clustering"] is True
        assert node["ip_address"] == f"10.20.0.{11 + index}"
        assert node["products"] == []
        assert "lithnetams" not in node["services"]
        assert (
            node["certificates"][0]["thumbprint"]
            == state["suggested_inputs"]["certificate_thumbprint"]
        ), name


def test_node_names_follow_the_lab(state):
    three = scenarios.default_state(["ams1", "ams2", "ams3"], NOW)
    assert list(three["nodes"]) == ["AMS1", "AMS2", "AMS3"]
    assert three["sql"]["reachable_from"] == {"AMS1": True, "AMS2": True, "AMS3": True}


@pytest.mark.parametrize("spec", SPECS)
def test_every_fault_applies_and_clears(state, spec):
    pristine = copy.deepcopy(state)
    scenarios.apply_fault(state, spec)
    assert state != pristine
    assert state["faults"]["applied"] == [spec]
    json.dumps(state)
    scenarios.clear_faults(state)
    assert state == pristine


@pytest.mark.parametrize(
    ("spec", "path", "expected"),
    [
        ("unreachable:ams2", ("faults", "unreachable"), ["AMS2"]),
        ("slow:AMS1:2.5", ("faults", "slow"), {"AMS1": 2.5}),
        ("crash:AMS1:connection_probe", ("faults", "crash_halfway"), {"AMS1": "connection_probe"}),
        ("reboot:AMS2:x", ("faults", "reboot_mid_action"), {"AMS2": "x"}),
        ("kds_missing", ("domain", "kds_root_keys"), []),
        ("gmsa_not_allowed:AMS2", ("domain", "gmsas", "svc-ams$", "principals_allowed"), ["AMS1$"]),
        ("feature_missing:AMS1", ("nodes", "AMS1", "features", "Failover-Clustering"), False),
        ("sql_express", ("sql", "engine_edition"), 4),
        ("sql_unreachable:AMS2", ("sql", "reachable_from", "AMS2"), False),
        ("ad_module:AMS2", ("nodes", "AMS2", "features", "RSAT-AD-PowerShell"), True),
        ("no_batch_logon:AMS2", ("nodes", "AMS2", "policy", "batch_logon"), []),
        (
            "no_stored_passwords:AMS1",
            ("nodes", "AMS1", "policy", "stored_passwords_allowed"),
            False,
        ),
        ("pending_reboot:AMS1", ("nodes", "AMS1", "pending_reboot"), True),
        ("test_cluster_fail", ("faults", "test_cluster"), "fail"),
        ("role_fails_on:AMS2", ("faults", "role_fails_on"), ["AMS2"]),
    ],
)
def test_fault_effects(state, spec, path, expected):
    scenarios.apply_fault(state, spec)
    value = state
    for key in path:
        value = value[key]
    assert value == expected


def test_kds_too_new_is_usable_in_nine_hours(state):
    scenarios.apply_fault(state, "kds_too_new")
    usable = scenarios.kds_usable_at(state["domain"]["kds_root_keys"][0])
    assert timedelta(hours=8, minutes=59) < usable - datetime.now(UTC) <= timedelta(hours=9)


def test_version_mismatch_installs_the_other_version(state):
    scenarios.apply_fault(state, "version_mismatch:AMS2")
    node = state["nodes"]["AMS2"]
    assert node["registry"][scenarios.AMS_KEY]["Version"] == "3.0.1638.0"
    assert node["services"]["lithnetams"]["account"] == "CORP\\svc-ams$"
    assert state["nodes"]["AMS1"]["products"] == []


@pytest.mark.parametrize(
    "spec", ["nonsense", "unreachable", "unreachable:NOPE", "crash:AMS1", "feature_missing"]
)
def test_bad_specs_are_refused(state, spec):
    with pytest.raises(ValueError):
        scenarios.apply_fault(state, spec)


@pytest.mark.parametrize("name", sorted(scenarios.SCENARIOS))
def test_builtin_scenarios_load(name):
    state = scenarios.load_scenario(name, NODES, NOW)
    assert state["scenario"] == name
    assert state["faults"]["applied"] == []
    json.dumps(state)


def test_scenario_name_with_faults():
    state = scenarios.load_scenario("bare+unreachable:AMS1", NODES, NOW)
    assert state["domain"]["kds_root_keys"] == []
    assert state["faults"]["unreachable"] == ["AMS1"]


def test_existing_cluster_scenario_has_the_role_online():
    state = scenarios.load_scenario("existing_cluster", NODES, NOW)
    group = state["cluster"]["groups"]["AMSWEB"]
    assert group["state"] == "Online"
    assert state["nodes"]["AMS1"]["services"]["lithnetams"]["start_type"] == "Manual"


def test_scenario_file_overlay(tmp_path):
    path = tmp_path / "lab.json"
    path.write_text(
        json.dumps(
            {
                "base": "default",
                "patch": {"sql": {"version": "13.0.5026.0"}},
                "faults": ["pending_reboot:AMS2"],
            }
        )
    )
    state = scenarios.load_scenario(str(path), NODES, NOW)
    assert state["sql"]["version"] == "13.0.5026.0"
    assert state["nodes"]["AMS2"]["pending_reboot"] is True
    assert state["scenario"] == str(path)


def test_scenario_file_with_a_whole_state(tmp_path):
    path = tmp_path / "whole.json"
    whole = scenarios.default_state(["N1", "N2", "N3"], NOW)
    path.write_text(json.dumps(whole))
    assert list(scenarios.load_scenario(str(path), NODES)["nodes"]) == ["N1", "N2", "N3"]


def test_unknown_scenario_is_refused():
    with pytest.raises(ValueError, match="Unknown scenario"):
        scenarios.load_scenario("nope", NODES)
