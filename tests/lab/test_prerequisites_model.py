"""Lab models of the prerequisite scripts, called directly with a fake context, and the
Prerequisites step driven end to end against them (no network)."""

import pytest

from app.guides.cluster.prerequisites import STEP
from app.lab import scenarios
from app.lab.context import ScriptFailure
from app.lab.handlers import prerequisites as model
from app.wizard.engine import Finish, NodeInfo, RunView
from tests.lab.fake_ctx import FakeCtx, FakeStore, run_action

NODES = ["AMS1", "AMS2"]
GMSA = "CORP\\svc-ams$"
FACT_PARAMS = {
    "ServiceAccount": GMSA,
    "SqlServer": "sql1.corp.example.test",
    "SqlHost": "sql1.corp.example.test",
    "SqlPort": 1433,
    "Database": "AccessManager",
}


def world(*specs: str) -> FakeStore:
    state = scenarios.default_state(NODES)
    for spec in specs:
        scenarios.apply_fault(state, spec)
    return FakeStore(state)


def node_facts(store, node="AMS1", auth="negotiate", **overrides):
    ctx = FakeCtx(store, node, {**FACT_PARAMS, **overrides}, auth=auth)
    return model.prereq_node_facts(ctx)


def domain_facts(store, auth="negotiate", domain="corp.example.test"):
    ctx = FakeCtx(store, "AMS1", {"ServiceAccount": GMSA, "Domain": domain}, auth=auth)
    return model.prereq_domain_facts(ctx)


def test_probe_reports_the_node_and_user():
    data = model.connection_probe(FakeCtx(world(), "AMS2", username="CORP\\ops"))
    assert data["computer_name"] == "AMS2"
    assert data["user"] == "CORP\\ops"
    assert data["domain"] == "corp.example.test"


def test_node_facts_on_the_happy_path():
    data = node_facts(world())
    assert data["feature"]["install_state"] == "Installed"
    assert data["pending_reboot"] == {"pending": False, "reasons": []}
    assert data["ams"]["installed"] is False
    assert data["gmsa_test"] == {"account": GMSA, "result": True, "error": None}
    sql = data["sql"]
    assert sql["tcp"] and sql["query_ok"]
    assert sql["engine_edition"] == 3
    assert sql["database_exists"] and sql["login_exists"]
    assert sql["database_roles"] == ["db_owner"]


@pytest.mark.parametrize(
    ("spec", "node", "path", "expected"),
    [
        ("feature_missing:AMS1", "AMS1", ("feature", "install_state"), "Available"),
        ("pending_reboot:AMS1", "AMS1", ("pending_reboot", "pending"), True),
        ("gmsa_not_allowed:AMS2", "AMS2", ("gmsa_test", "result"), False),
        ("gmsa_not_allowed:AMS2", "AMS1", ("gmsa_test", "result"), True),
        ("sql_unreachable:AMS2", "AMS2", ("sql", "tcp"), False),
        ("sql_express", "AMS1", ("sql", "engine_edition"), 4),
        ("sql_no_database", "AMS1", ("sql", "database_exists"), False),
        ("sql_no_login", "AMS1", ("sql", "login_exists"), False),
        ("version_mismatch:AMS2", "AMS2", ("ams", "registry_version"), "3.0.1638.0"),
        ("double_hop", "AMS1", ("sql", "query_ok"), False),
    ],
)
def test_node_facts_under_faults(spec, node, path, expected):
    value = node_facts(world(spec), node)
    for key in path:
        value = value[key]
    assert value == expected


def test_gmsa_missing_makes_test_adserviceaccount_fail():
    data = node_facts(world("gmsa_missing"))
    assert data["gmsa_test"]["result"] is None
    assert "Cannot find an object" in data["gmsa_test"]["error"]


def test_double_hop_blocks_ad_and_sql_but_not_credssp():
    store = world("double_hop")
    blocked = node_facts(store)
    assert "Unable to contact the server" in blocked["gmsa_test"]["error"]
    assert "ANONYMOUS LOGON" in blocked["sql"]["error"]
    assert node_facts(store, auth="credssp")["gmsa_test"]["result"] is True
    assert set(domain_facts(store)["errors"]) == {"domain", "kds", "gmsa"}
    assert domain_facts(store, auth="credssp")["errors"] == {}


def test_node_in_another_domain_cannot_use_the_gmsa():
    store = world()
    store.state["nodes"]["AMS2"]["domain"] = "other.example.test"
    assert node_facts(store, "AMS2")["gmsa_test"]["result"] is False


def test_group_principal_is_expanded():
    store = world()
    gmsa = store.state["domain"]["gmsas"]["svc-ams$"]
    gmsa["principals_allowed"] = ["AMS-Nodes"]
    store.state["domain"]["groups"]["AMS-Nodes"] = {"members": ["AMS1$", "AMS2$"]}
    assert node_facts(store, "AMS2")["gmsa_test"]["result"] is True
    principal = domain_facts(store)["gmsa"]["principals"][0]
    assert principal == {"sam": "AMS-Nodes", "class": "group", "members": ["AMS1$", "AMS2$"]}


def test_wrong_sql_instance_cannot_connect():
    data = node_facts(world(), SqlServer="sql1.corp.example.test\\OTHER")
    assert data["sql"]["tcp"] is True
    assert "network-related" in data["sql"]["error"]


def test_domain_facts_on_the_happy_path():
    data = domain_facts(world())
    assert data["domain"]["netbios"] == "CORP"
    assert data["domain_controllers"][0]["os_version"] == "10.0 (17763)"
    assert len(data["kds_root_keys"]) == 1
    assert data["gmsa"]["found"] and data["gmsa"]["account_not_delegated"]
    assert [p["sam"] for p in data["gmsa"]["principals"]] == ["AMS1$", "AMS2$"]
    assert data["gmsa"]["domain_admin"] is False


@pytest.mark.parametrize(
    ("spec", "check"),
    [
        ("kds_missing", lambda d: d["kds_root_keys"] == []),
        (
            "kds_too_new",
            lambda d: (
                scenarios.kds_usable_at(d["kds_root_keys"][0]) > scenarios.parse_iso(d["now_utc"])
            ),
        ),
        ("gmsa_missing", lambda d: d["gmsa"] == {"found": False, "sam": "svc-ams$"}),
        ("gmsa_delegable", lambda d: d["gmsa"]["account_not_delegated"] is False),
        (
            "gmsa_not_allowed:AMS2",
            lambda d: [p["sam"] for p in d["gmsa"]["principals"]] == ["AMS1$"],
        ),
        ("old_dc", lambda d: d["domain_controllers"][0]["os_version"] == "6.2 (9200)"),
    ],
)
def test_domain_facts_under_faults(spec, check):
    assert check(domain_facts(world(spec)))


def test_domain_facts_for_an_unknown_domain():
    assert "domain" in domain_facts(world(), domain="elsewhere.test")["errors"]


def test_install_feature_changes_only_that_node():
    store = world("feature_missing:AMS1", "feature_missing:AMS2")
    result = model.prereq_install_feature(FakeCtx(store, "AMS1", {}))
    assert result["install_state"] == "Installed" and not result["was_installed"]
    assert store.state["nodes"]["AMS1"]["features"]["Failover-Clustering"] is True
    assert "ClusSvc" in store.state["nodes"]["AMS1"]["services"]
    assert store.state["nodes"]["AMS2"]["features"]["Failover-Clustering"] is False


def test_install_feature_refuses_other_features():
    with pytest.raises(ScriptFailure):
        model.prereq_install_feature(FakeCtx(world(), "AMS1", {"FeatureName": "Web-Server"}))


def test_set_principals_replaces_the_list():
    store = world()
    params = {"ServiceAccount": GMSA, "Domain": "corp.example.test", "Principals": ["AMS2$"]}
    result = model.prereq_set_gmsa_principals(FakeCtx(store, "AMS1", params))
    assert result["principals"] == ["AMS2$"]
    assert store.state["domain"]["gmsas"]["svc-ams$"]["principals_allowed"] == ["AMS2$"]
    assert node_facts(store, "AMS1")["gmsa_test"]["result"] is False


@pytest.mark.parametrize(
    ("specs", "principals", "message"),
    [
        ((), ["NOSUCH$"], "identity: 'NOSUCH"),
        (("gmsa_missing",), ["AMS1$"], "Cannot find an object"),
        (("double_hop",), ["AMS1$"], "Unable to contact the server"),
    ],
)
def test_set_principals_failures(specs, principals, message):
    params = {"ServiceAccount": GMSA, "Domain": "corp.example.test", "Principals": principals}
    with pytest.raises(ScriptFailure, match=message):
        model.prereq_set_gmsa_principals(FakeCtx(world(*specs), "AMS1", params))


def test_restart_clears_the_pending_reboot_and_moves_the_boot_time():
    store = world("pending_reboot:AMS1")
    before = store.state["nodes"]["AMS1"]["boot_time"]
    result = model.prereq_restart_node(FakeCtx(store, "AMS1", {"DelaySeconds": 10}))
    assert result["boot_time"] == before
    node = store.state["nodes"]["AMS1"]
    assert node["pending_reboot"] is False
    assert scenarios.CBS_REBOOT_KEY not in node["registry"]
    assert node["boot_time"] != before


def test_check_scripts_never_change_the_world():
    store = world("pending_reboot:AMS1", "feature_missing:AMS2")
    snapshot = scenarios.json.dumps(store.state, sort_keys=True)
    model.connection_probe(FakeCtx(store, "AMS1"))
    node_facts(store, "AMS1")
    node_facts(store, "AMS2")
    domain_facts(store)
    assert scenarios.json.dumps(store.state, sort_keys=True) == snapshot


# ---------------------------------------------------------------------------------------------
# The step against the model
# ---------------------------------------------------------------------------------------------


def drive(store: FakeStore, options=None, license_key=True, auth="negotiate", limit=20):
    """Run advance() until it finishes, executing each phase through the lab handlers."""
    hints = store.state["suggested_inputs"]
    inputs = {k: hints[k] for k in ("ams_version", "gmsa", "sql_connection_string")}
    nodes = tuple(NodeInfo(n, n.lower(), i) for i, n in enumerate(store.state["nodes"]))
    results: dict = {}
    phases = []
    for _ in range(limit):
        view = RunView(
            "lab",
            "corp.example.test",
            nodes,
            inputs,
            {"prerequisites": inputs},
            frozenset({"license_key"} if license_key else ()),
            results,
            dict(options or {}),
        )
        outcome = STEP.advance(view)
        if isinstance(outcome, Finish):
            return outcome, phases
        phases.append(outcome)
        results[outcome.name] = {a.node: run_action(store, a, auth) for a in outcome.actions}
    raise AssertionError("the step did not finish")


def statuses(finish: Finish) -> dict[str, str]:
    return {c.key: c.status for c in finish.checks}


def test_default_world_passes():
    finish, phases = drive(world())
    assert [p.name for p in phases] == ["probe", "facts", "domain"]
    assert not any(p.changes_state for p in phases)
    assert finish.status == "done", finish.summary
    assert {c.status for c in finish.checks} <= {"pass", "info"}


@pytest.mark.parametrize(
    ("specs", "key", "status"),
    [
        (("unreachable:AMS2",), "winrm:AMS2", "fail"),
        (("auth_failure:AMS1",), "winrm:AMS1", "fail"),
        (("kds_missing",), "kds", "fail"),
        (("kds_too_new",), "kds", "fail"),
        (("gmsa_missing",), "gmsa", "fail"),
        (("gmsa_delegable",), "gmsa_settings", "fail"),
        (("gmsa_not_allowed:AMS2",), "gmsa_principals", "fail"),
        (("gmsa_not_allowed:AMS2",), "gmsa_test:AMS2", "fail"),
        (("feature_missing:AMS1",), "feature:AMS1", "fail"),
        (("sql_express",), "sql_edition", "fail"),
        (("sql_unreachable:AMS2",), "sql_tcp:AMS2", "fail"),
        (("sql_no_database",), "sql_database", "fail"),
        (("sql_no_login",), "sql_login", "fail"),
        (("version_mismatch:AMS2",), "ams_installed:AMS2", "fail"),
        (("old_dc",), "dc_version", "fail"),
        (("pending_reboot:AMS1",), "reboot:AMS1", "warn"),
        (("double_hop",), "kds", "warn"),
        (("double_hop",), "sql_query", "warn"),
    ],
)
def test_each_fault_surfaces_as_its_check(specs, key, status):
    finish, _ = drive(world(*specs))
    assert statuses(finish)[key] == status
    expected = "needs_attention" if status == "fail" else "done"
    assert finish.status == expected


def test_credssp_sees_through_the_double_hop():
    finish, _ = drive(world("double_hop"), auth="credssp")
    assert finish.status == "done"
    assert statuses(finish)["kds"] == "pass"


def test_missing_license_fails():
    finish, _ = drive(world(), license_key=False)
    assert statuses(finish)["license"] == "fail"


def test_feature_fix_then_checks_pass():
    store = world("feature_missing:AMS1", "feature_missing:AMS2")
    finish, _ = drive(store)
    fix = next(c.fix for c in finish.checks if c.key == "feature:AMS1")
    assert fix["nodes"] == ["AMS1", "AMS2"]
    finish, phases = drive(store, options={"fix": fix})
    assert phases[0].name == "fix" and phases[0].changes_state
    assert finish.status == "done", finish.summary


def test_principals_fix_names_every_node_and_keeps_others():
    store = world("gmsa_not_allowed:AMS2")
    store.state["domain"]["gmsas"]["svc-ams$"]["principals_allowed"].append("SQL1$")
    finish, _ = drive(store)
    fix = next(c.fix for c in finish.checks if c.key == "gmsa_principals")
    assert fix["params"]["Principals"] == ["AMS1$", "SQL1$", "AMS2$"]
    finish, _ = drive(store, options={"fix": fix})
    assert finish.status == "done", finish.summary
    allowed = store.state["domain"]["gmsas"]["svc-ams$"]["principals_allowed"]
    assert allowed == ["AMS1$", "SQL1$", "AMS2$"]


def test_restart_fix_reprobes_until_the_node_is_back():
    store = world("pending_reboot:AMS1")
    finish, _ = drive(store)
    fix = next(c.fix for c in finish.checks if c.key == "reboot:AMS1")
    finish, phases = drive(store, options={"fix": fix})
    assert [p.name for p in phases][:2] == ["fix", "probe"]
    assert statuses(finish)["reboot:AMS1"] == "pass"


def test_restart_waits_while_the_node_is_down():
    store = world("pending_reboot:AMS1", "unreachable:AMS1")
    finish, phases = drive(store, options={"fix": "restart"}, limit=40)
    probes = [p for p in phases if p.name.startswith("probe")]
    assert len(probes) == 12
    assert all(p.wait_before > 0 for p in probes[1:])
    assert statuses(finish)["winrm:AMS1"] == "fail"
