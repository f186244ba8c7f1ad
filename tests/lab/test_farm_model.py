"""Lab models of the load-balancer guide's scripts: health pages from the node's modelled service
state, the round-robin balancer over members in service, the farm's SQL sign-in, and the faults."""

import pytest

from app.lab import operator, scenarios
from app.lab.handlers import farm
from tests.lab.cluster_world import ctx, world

FQDN = "amsweb.corp.example.test"


def installed(*specs, version="3.0.1638.0"):
    store = world(scenario="farm")
    with store.transaction() as state:
        state["suggested_inputs"]["ams_version"] = version
        operator.install_by_hand(state)
        operator.configure_by_hand(state)
        for spec in specs:
            scenarios.apply_fault(state, spec)
    return store


def probe(store, node="AMS1", paths=("/health-check",)):
    result = farm.lb_health_probe(
        ctx(store, node, HostName=f"{node.lower()}.corp.example.test", Paths=list(paths))
    )
    return {a["path"]: a["status_code"] for a in result["answers"]}


def balancer(store, count=4, node="AMS1"):
    result = farm.lb_balancer_probe(ctx(store, node, Address=FQDN, Count=count))
    return result["requests"]


def test_farm_scenario_has_a_balancer_and_no_cluster_feature():
    state = world(scenario="farm").read()
    assert state["balancer"]["members"] == list(state["nodes"])
    assert not any(n["features"]["Failover-Clustering"] for n in state["nodes"].values())


def test_health_page_needs_a_running_configured_service_with_a_bound_certificate():
    store = world(scenario="farm")
    assert probe(store) == {"/health-check": None}  # nothing installed
    with store.transaction() as state:
        operator.install_by_hand(state)
    assert probe(store) == {"/health-check": None}  # no certificate bound: TLS fails
    with store.transaction() as state:
        operator.configure_by_hand(state)
    assert probe(store) == {"/health-check": 200}


def test_api_page_follows_agent_access_and_version():
    store = installed()
    assert probe(store, paths=["/api/v3.0/health-check"]) == {"/api/v3.0/health-check": 404}
    with store.transaction() as state:
        state["nodes"]["AMS1"]["ams_host_config"] = {"web_app_enabled": True, "api_enabled": True}
    assert probe(store, paths=["/api/v3.0/health-check"]) == {"/api/v3.0/health-check": 200}
    v2 = installed(version="2.1.1069.0")
    assert probe(v2, paths=["/api/v3.0/health-check"]) == {"/api/v3.0/health-check": 404}


@pytest.mark.parametrize("spec", ["health_fails:AMS2", "sql_unreachable:AMS2"])
def test_an_unhealthy_node_answers_503(spec):
    store = installed(spec)
    assert probe(store, "AMS2") == {"/health-check": 503}
    assert probe(store, "AMS1") == {"/health-check": 200}


def test_balancer_round_robins_over_members_in_service():
    store = installed()
    requests = balancer(store, count=4)
    assert [r["status_code"] for r in requests] == [200] * 4
    assert store.read()["balancer"]["next"] == 4
    thumbprint = store.read()["suggested_inputs"]["certificate_thumbprint"]
    assert {r["thumbprint"] for r in requests} == {thumbprint}


def test_balancer_skips_unhealthy_drained_and_unreachable_members():
    store = installed("certificate_mismatch:AMS2")
    prints = {r["thumbprint"] for r in balancer(store, count=4)}
    assert len(prints) == 2  # AMS2 serves its own certificate: visible through the balancer
    with store.transaction() as state:
        state["balancer"]["drained"] = ["AMS1"]
        scenarios.apply_fault(state, "balancer_cannot_reach:AMS2")
    assert {r["status_code"] for r in balancer(store)} == {503}
    with store.transaction() as state:
        scenarios.clear_faults(state)
        scenarios.apply_fault(state, "health_fails:AMS2")
    assert {r["status_code"] for r in balancer(store)} == {503}  # its probe takes it out


def test_balancer_name_must_be_on_the_certificate():
    store = installed()
    with store.transaction() as state:
        for node in state["nodes"].values():
            node["certificates"][0]["dns_names"] = ["other.corp.example.test"]
    [answer] = balancer(store, count=1)
    assert answer["status_code"] is None and "trust relationship" in answer["error"]


def test_sql_connection_test_needs_a_delegating_logon_and_a_login():
    store = installed()
    text = store.read()["suggested_inputs"]["sql_connection_string"]
    hop = farm.lb_sql_connection_test(ctx(store, "AMS1", ConnectionString=text))
    assert "ANONYMOUS LOGON" in hop["error"]
    as_account = ctx(store, "AMS1", auth="task", ConnectionString=text)
    as_account.username = "CORP\\svc-ams$"
    opened = farm.lb_sql_connection_test(as_account)
    assert (
        opened["opened"] and opened["is_db_owner"] and opened["current_database"] == "AccessManager"
    )
    with store.transaction() as state:
        scenarios.apply_fault(state, "sql_unreachable:AMS1")
    assert "network-related" in farm.lb_sql_connection_test(as_account)["error"]


def test_host_config_read_reports_the_external_name_and_certificate_cover():
    store = installed()
    with store.transaction() as state:
        state["nodes"]["AMS1"]["ams_host_config"] = {"web_app_enabled": True, "host_name": FQDN}
    read = farm.lb_host_config_read(ctx(store, "AMS1", ExternalHostName=FQDN))
    assert read["external_host_name"] == FQDN and read["certificate_covers"] is True
    other = farm.lb_host_config_read(ctx(store, "AMS1", ExternalHostName="x.example.org"))
    assert other["certificate_covers"] is False


def test_account_mismatch_needs_an_install_and_is_undone():
    with pytest.raises(ValueError, match="not installed"):
        world("account_mismatch:AMS2", scenario="farm")
    store = installed("account_mismatch:AMS2")
    assert store.read()["nodes"]["AMS2"]["services"]["lithnetams"]["account"] == "CORP\\svc-other$"
    with store.transaction() as state:
        scenarios.clear_faults(state)
    assert store.read()["nodes"]["AMS2"]["services"]["lithnetams"]["account"] == "CORP\\svc-ams$"
