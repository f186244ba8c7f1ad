"""Each load-balancer step's advance() on fabricated results: which phase comes next, and the
verdict. No lab, no worker."""

from __future__ import annotations

from app.guides import GUIDES
from app.guides.cluster import prerequisites as cluster_prerequisites
from app.guides.load_balancer import (
    farm_test,
    first_node,
    host_config,
    ip_detection,
    other_nodes,
    prerequisites,
    sql_database,
)
from app.guides.shared import prerequisites as shared_prerequisites
from app.guides.shared.checks import parse_target
from app.steps import ActionResult, Finish, NodeInfo, Phase, RunOptions, RunView

NODES = ("AMS1", "AMS2", "AMS3")
DOMAIN = "corp.example.test"
THUMB = "A" * 40
CS = "Server=sql1.corp.example.test;Database=AccessManager;Integrated Security=true"
INPUTS = {
    "prerequisites": {
        "ams_version": "3.0.1638.0",
        "gmsa": "CORP\\svc-ams$",
        "sql_connection_string": CS,
    },
    "sql_database": {},
    "first_node": {"certificate_thumbprint": THUMB, "https_port": 443, "license_confirmed": True},
    "other_nodes": {},
    "host_config": {
        "external_host_name": "ams.corp.example.test",
        "web_app_enabled": True,
        "agent_access_enabled": True,
    },
    "ip_detection": {
        "balancer_layer": "application",
        "forward_limit": 1,
        "known_proxies": "10.20.0.60",
        "known_networks": "",
        "settings_confirmed": True,
    },
    "farm_test": {
        "balancer_address": "ams.corp.example.test",
        "requests_per_round": 4,
        "validate_certificate": True,
    },
}


def view(step, results=None, options=None, nodes=NODES, **overrides) -> RunView:
    all_inputs = {k: dict(v) for k, v in INPUTS.items()}
    all_inputs[step].update(overrides)
    return RunView(
        "test",
        DOMAIN,
        tuple(NodeInfo(n, f"{n.lower()}.{DOMAIN}", i) for i, n in enumerate(nodes)),
        all_inputs[step],
        all_inputs,
        frozenset(),
        results or {},
        RunOptions(**(options or {})),
    )


def ok(node, script, data):
    return ActionResult(node, script, "succeeded", data)


def failed(node, script, message):
    return ActionResult(node, script, "failed", None, "script_error", message)


def detected(node, account="CORP\\svc-ams$", thumb=THUMB, installed=True, **extra):
    data = {
        "installed": installed,
        "service": {"status": "Running", "start_type": "Automatic", "account": account},
        "version": "3.0.1638.0",
        "configured": 1,
        "connection_string": CS,
        "sql_server": "sql1.corp.example.test",
        "binding": {"present": True, "thumbprint": thumb},
        "certificate": {"present": True, "has_private_key": True, "expired": False},
        "license": {"present": None, "checked": ["Parameters\\LicenseData"]},
    }
    data.update(extra)
    return ok(node, "ams_detect", data)


def healthy(node, paths=("/health-check",), code=200, thumb=THUMB):
    answers = [
        {
            "path": p,
            "uri": f"https://x{p}",
            "status_code": code,
            "thumbprint": thumb,
            "elapsed_ms": 3,
        }
        for p in paths
    ]
    return ok(node, "lb_health_probe", {"service_status": "Running", "answers": answers})


def fail_keys(outcome: Finish) -> set[str]:
    return {c.key for c in outcome.checks if c.status == "fail"}


# --- guide -----------------------------------------------------------------------------------


def test_guide_is_registered_with_one_module_per_step():
    guide = GUIDES["ams-load-balancer"]
    assert [s.key for s in guide.steps] == [
        "prerequisites",
        "sql_database",
        "first_node",
        "other_nodes",
        "host_config",
        "ip_detection",
        "farm_test",
        "summary",
    ]
    assert GUIDES["ams-failover-cluster"].steps[0] is cluster_prerequisites.STEP


# --- prerequisites ---------------------------------------------------------------------------


def test_prerequisites_reuse_the_cluster_phases_without_the_cluster_feature():
    step = prerequisites.STEP
    assert isinstance(step, shared_prerequisites.Prerequisites)
    assert step.form_class is shared_prerequisites.PrerequisitesForm
    first = step.advance(view("prerequisites"))
    assert isinstance(first, Phase) and first.name == "probe"
    target, _ = parse_target(INPUTS["prerequisites"])
    facts = {
        "os": {"caption": "Windows Server 2019", "version": "10.0.17763"},
        "domain": DOMAIN,
        "part_of_domain": True,
        "feature": {"install_state": "Available"},
        "sql": {"tcp": True},
    }
    checks = prerequisites.node_checks(view("prerequisites"), target, {"AMS1": facts})
    assert not any(c.key.startswith("feature:") for c in checks)
    assert {c.status for c in checks} == {"pass"}


def test_prerequisites_refuse_the_cluster_feature_fix():
    step = prerequisites.STEP
    fixed = step.advance(view("prerequisites", options={"fix": "install_feature"}))
    assert fixed.name == "probe"  # not offered to a farm: ignored
    ad = step.advance(view("prerequisites", options={"fix": "install_ad_module"}))
    assert ad.name == "fix"


def test_version_and_node_count_for_a_farm():
    def version(v):
        target, _ = parse_target({**INPUTS["prerequisites"], "ams_version": v})
        return prerequisites.version_check(target).status

    assert [version(v) for v in ("1.0.1.0", "2.0.8393.0", "2.1.1069.0", "3.0.1638.0")] == [
        "fail",
        "warn",
        "pass",
        "pass",
    ]
    assert prerequisites.node_count_check(1).status == "fail"
    assert prerequisites.node_count_check(2).status == "info"


# --- sql database ----------------------------------------------------------------------------


def opened(node, **extra):
    data = {
        "opened": True,
        "integrated_security": True,
        "edition": "Enterprise",
        "engine_edition": 3,
        "version": "15.0.4375.4",
        "is_db_owner": True,
        "login": "CORP\\svc-ams$",
        "current_database": "AccessManager",
        "data_source": "sql1",
    }
    data.update(extra)
    return ok(node, "task_run", data)


def test_sql_runs_as_the_service_account_then_falls_back_where_no_task_can_log_on():
    step = sql_database.STEP
    first = step.advance(view("sql_database"))
    assert first.name == "as_service"
    assert {a.script for a in first.actions} == {"task_run"}
    assert all(a.params["ServiceAccount"] == "CORP\\svc-ams$" for a in first.actions)
    service = {
        "AMS1": opened("AMS1"),
        "AMS2": opened("AMS2"),
        "AMS3": failed("AMS3", "task_run", "CORP\\svc-ams$ may not log on as a batch job"),
    }
    nxt = step.advance(view("sql_database", {"as_service": service}))
    assert nxt.name == "as_operator" and [a.node for a in nxt.actions] == ["AMS3"]
    done = step.advance(
        view(
            "sql_database",
            {"as_service": service, "as_operator": {"AMS3": opened("AMS3", login="CORP\\op")}},
        )
    )
    assert done.status == "done"
    assert {c.key for c in done.checks if c.status == "warn"} == {"sql_as_account:AMS3"}


def test_sql_failures_per_node():
    service = {
        "AMS1": opened("AMS1"),
        "AMS2": opened("AMS2", opened=False, error="A network-related error"),
        "AMS3": opened("AMS3", is_db_owner=False, version="15.0.9"),
    }
    outcome = sql_database.STEP.advance(view("sql_database", {"as_service": service}))
    assert outcome.status == "needs_attention"
    assert fail_keys(outcome) == {"sql_open:AMS2", "sql_owner:AMS3", "sql_same_server"}
    assert set(outcome.failed_nodes) == {"AMS2", "AMS3"}


# --- first node ------------------------------------------------------------------------------


def test_first_node_checklist_then_health_then_done():
    step = first_node.STEP
    assert step.advance(view("first_node")).name == "detect"
    missing = step.advance(
        view("first_node", {"detect": {"AMS1": detected("AMS1", installed=False)}})
    )
    assert fail_keys(missing) == {"install:AMS1"}
    assert any("Licensing" in s for s in missing.artifacts["manual_checklist"]["AMS1"])
    results = {"detect": {"AMS1": detected("AMS1")}}
    health = step.advance(view("first_node", results))
    assert health.name == "health" and health.actions[0].params["Paths"] == ["/health-check"]
    assert health.actions[0].params["HostName"] == "ams1.corp.example.test"
    results["health"] = {"AMS1": healthy("AMS1")}
    assert step.advance(view("first_node", results)).status == "done"
    unconfirmed = step.advance(view("first_node", results, license_confirmed=False))
    assert fail_keys(unconfirmed) == {"license:AMS1"}


def test_first_node_wrong_account_and_unhealthy():
    results = {
        "detect": {"AMS1": detected("AMS1", account="CORP\\other$")},
        "health": {"AMS1": healthy("AMS1", code=503)},
    }
    outcome = first_node.STEP.advance(view("first_node", results))
    assert fail_keys(outcome) == {"account:AMS1", "health/health-check:AMS1"}
    assert "database" in next(c for c in outcome.checks if c.key.startswith("health")).remediation


# --- other nodes -----------------------------------------------------------------------------


def test_other_nodes_compared_with_the_first():
    step = other_nodes.STEP
    assert [a.node for a in step.advance(view("other_nodes")).actions] == list(NODES)
    same = {n: detected(n) for n in NODES}
    assert step.advance(view("other_nodes", {"detect": same})).status == "done"
    differ = dict(
        same, AMS2=detected("AMS2", account="CORP\\other$"), AMS3=detected("AMS3", thumb="B" * 40)
    )
    outcome = step.advance(view("other_nodes", {"detect": differ}))
    assert fail_keys(outcome) == {"account:AMS2", "binding:AMS3"}
    missing = dict(same, AMS3=detected("AMS3", installed=False))
    pending = step.advance(view("other_nodes", {"detect": missing}))
    assert fail_keys(pending) == {"install:AMS3"}
    assert not any("Licensing" in s for s in pending.artifacts["manual_checklist"]["AMS3"])


# --- host configuration ----------------------------------------------------------------------


def host(node, name="ams.corp.example.test", covers=True, **extra):
    data = {
        "installed": True,
        "service_status": "Running",
        "web_app_enabled": True,
        "agent_access_enabled": True,
        "external_host_name": name,
        "error": None,
        "binding_thumbprint": THUMB,
        "certificate_covers": covers,
    }
    data.update(extra)
    return ok(node, "lb_host_config_read", data)


def test_host_config_applies_only_where_it_differs_then_reads_again():
    step = host_config.STEP
    assert step.advance(view("host_config")).name == "read"
    read = {"AMS1": host("AMS1"), "AMS2": host("AMS2", name=None), "AMS3": host("AMS3")}
    apply = step.advance(view("host_config", {"read": read}))
    assert (
        apply.name == "apply"
        and apply.changes_state
        and [a.node for a in apply.actions] == ["AMS2"]
    )
    assert apply.actions[0].params["HostName"] == "ams.corp.example.test"
    results = {
        "read": read,
        "apply": {"AMS2": ok("AMS2", "ams_set_host_config", {"restarted": True})},
    }
    assert step.advance(view("host_config", results)).name == "read_after"
    results["read_after"] = {n: host(n) for n in NODES}
    done = step.advance(view("host_config", results))
    assert done.status == "done" and done.artifacts["changed"] == ["AMS2"]
    results["read_after"]["AMS3"] = host("AMS3", covers=False)
    assert fail_keys(step.advance(view("host_config", results))) == {"certificate_name:AMS3"}


def test_host_config_refuses_an_address_as_external_name():
    import pytest

    with pytest.raises(ValueError):
        host_config.external_name("10.20.0.60")
    assert host_config.external_name("AMS.corp.example.test") == "ams.corp.example.test"


# --- IP address detection --------------------------------------------------------------------


def test_ip_detection():
    step = ip_detection.STEP
    assert step.advance(view("ip_detection", balancer_layer="transport")).status == "done"
    assert step.advance(view("ip_detection")).status == "done"
    unconfirmed = step.advance(view("ip_detection", settings_confirmed=False))
    assert fail_keys(unconfirmed) == {"ip_detection"}
    assert "10.20.0.60" in unconfirmed.checks[0].remediation
    none = step.advance(view("ip_detection", known_proxies=""))
    assert fail_keys(none) == {"trusted_proxies"}
    bad = step.advance(
        view("ip_detection", known_proxies="10.20.0.60, lb1", known_networks="10.0.0.0/4")
    )
    assert "lb1" in bad.checks[0].evidence


# --- farm test -------------------------------------------------------------------------------


def through(codes, thumb=THUMB):
    return {
        "AMS1": ok(
            "AMS1",
            "lb_balancer_probe",
            {
                "uri": "https://ams/health-check",
                "requests": [{"status_code": c, "thumbprint": thumb} for c in codes],
            },
        )
    }


PATHS = ("/health-check", "/api/v3.0/health-check")


def farm_results(balancer=None, client="AMS1"):
    results = {"health": {n: healthy(n, PATHS) for n in NODES}}
    if balancer is not None:
        results["balancer"] = {client: next(iter(balancer.values()))}
    return results


def test_farm_test_asks_every_page_then_the_balancer():
    step = farm_test.STEP
    health = step.advance(view("farm_test"))
    assert health.name == "health" and health.actions[0].params["Paths"] == list(PATHS)
    sick = farm_results()
    sick["health"]["AMS2"] = healthy("AMS2", PATHS, code=503)
    assert fail_keys(step.advance(view("farm_test", sick))) == {
        "health/health-check:AMS2",
        "health/api/v3.0/health-check:AMS2",
    }
    assert step.advance(view("farm_test", farm_results())).name == "balancer"
    only_nodes = step.advance(view("farm_test", farm_results(), balancer_address=""))
    assert only_nodes.status == "done"


def test_farm_test_rounds_carry_the_nodes_reached_in_the_fix():
    step = farm_test.STEP
    first = step.advance(view("farm_test", farm_results(through([200] * 4))))
    # A round that passes is a passed attempt (not a failure): the step goes on with the next.
    assert first.status == "passed" and fail_keys(first) == set()
    assert [c.fix["id"] for c in first.checks if c.fix] == ["lb_round:AMS1:"]
    # With only AMS1 in service the requests go out from another node.
    phase = step.advance(view("farm_test", farm_results(), options={"fix": "lb_round:AMS1:"}))
    assert phase.actions[0].node == "AMS2"
    r1 = step.advance(
        view(
            "farm_test", farm_results(through([200] * 4), "AMS2"), options={"fix": "lb_round:AMS1:"}
        )
    )
    assert r1.status == "passed"
    assert [c.fix["id"] for c in r1.checks if c.fix] == ["lb_round:AMS2:AMS1"]
    r3 = step.advance(
        view(
            "farm_test",
            farm_results(through([200] * 4), "AMS1"),
            options={"fix": "lb_round:AMS3:AMS1,AMS2"},
        )
    )
    assert r3.status == "passed" and r3.summary.startswith("Round passed: every node was reached")
    assert [c.fix["id"] for c in r3.checks if c.fix] == ["lb_round:*:AMS1,AMS2,AMS3"]
    done = step.advance(
        view(
            "farm_test",
            farm_results(through([200] * 4)),
            options={"fix": "lb_round:*:AMS1,AMS2,AMS3"},
        )
    )
    assert done.status == "done" and done.artifacts["reached"] == ["AMS1", "AMS2", "AMS3"]


def test_farm_test_round_failures_and_forged_rounds():
    step = farm_test.STEP
    refused = step.advance(
        view(
            "farm_test",
            farm_results(through([503] * 4), "AMS1"),
            options={"fix": "lb_round:AMS2:AMS1"},
        )
    )
    assert refused.status == "needs_attention" and refused.failed_nodes == ("AMS2",)
    assert fail_keys(refused) == {"balancer:AMS2"}
    assert [c.fix["id"] for c in refused.checks if c.fix] == ["lb_round:AMS2:AMS1"]
    other_cert = step.advance(view("farm_test", farm_results(through([200] * 4, thumb="B" * 40))))
    assert fail_keys(other_cert) == {"balancer"}
    # Names not in the deployment are dropped; an unknown node restarts at every node in service.
    assert farm_test.current_round(view("farm_test", options={"fix": "lb_round:EVIL:AMS1,X"})) == (
        "*",
        [],
    )
    assert farm_test.current_round(view("farm_test", options={"fix": "lb_round:ams2:AMS1,X"})) == (
        "AMS2",
        ["AMS1"],
    )
