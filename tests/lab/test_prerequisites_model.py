"""Lab models of the prerequisite scripts, called directly with a fake context, and the
Prerequisites step driven end to end against them (no network)."""

import pytest

from app.guides.cluster.prerequisites import STEP
from app.lab import scenarios
from app.lab.context import ScriptFailure
from app.lab.handlers import prerequisites as model
from app.steps import Finish, NodeInfo, RunOptions, RunView
from app.wizard import route
from tests.lab.fake_ctx import FakeCtx, FakeStore, run_action

NODES = ["AMS1", "AMS2"]
SET_PRINCIPALS = "prereq_set_gmsa_principals"
GMSA = "CORP\\svc-ams$"
FACT_PARAMS = {
    "ServiceAccount": GMSA,
    "SqlServer": "sql1.corp.example.test",
    "SqlHost": "sql1.corp.example.test",
    "SqlPort": 1433,
    "Database": "AccessManager",
}


def world(*specs: str, ad_module: bool = True) -> FakeStore:
    """The strict default world; with `ad_module` the nodes already have RSAT-AD-PowerShell (the
    fix the step offers), so tests about other checks get past the domain phase."""
    state = scenarios.default_state(NODES)
    if ad_module:
        for node in NODES:
            scenarios.apply_fault(state, f"ad_module:{node}")
    for spec in specs:
        scenarios.apply_fault(state, spec)
    return FakeStore(state)


def node_facts(store, node="AMS1", auth="negotiate", **overrides):
    ctx = FakeCtx(store, node, {**FACT_PARAMS, **overrides}, auth=auth)
    return model.prereq_node_facts(ctx)


def sql_facts(store, node="AMS1", user=GMSA, auth="task", **overrides):
    """prereq_sql_facts as the task running as `user` (the gMSA by default) runs it."""
    params = {"SqlServer": FACT_PARAMS["SqlServer"], "Account": GMSA, "Database": "AccessManager"}
    ctx = FakeCtx(
        store, node, {**params, **overrides}, auth=auth, username=user, script="prereq_sql_facts"
    )
    return model.prereq_sql_facts(ctx)


def as_gmsa(store, node="AMS1"):
    """The service phase's action on `node`: prereq_sql_facts in a task as the gMSA."""
    info = NodeInfo(node, node.lower(), NODES.index(node))
    action = route.as_service_account(
        info,
        "prereq_sql_facts",
        GMSA,
        {"SqlServer": FACT_PARAMS["SqlServer"], "Account": GMSA, "Database": "AccessManager"},
        label="t",
    )
    return run_action(store, action)


def domain_facts(store, auth="task", domain="corp.example.test"):
    params = {"ServiceAccount": GMSA, "Domain": domain}
    ctx = FakeCtx(store, "AMS1", params, auth=auth, script="prereq_domain_facts")
    return model.prereq_domain_facts(ctx)


def test_probe_reports_the_node_and_user():
    data = model.connection_probe(FakeCtx(world(), "AMS2", username="CORP\\ops"))
    assert data["computer_name"] == "AMS2"
    assert data["user"] == "CORP\\ops"
    assert data["domain"] == "corp.example.test"


def test_node_facts_are_local_only():
    data = node_facts(world())
    assert data["feature"]["install_state"] == "Installed"
    assert data["ad_module"]["install_state"] == "Installed"
    assert data["pending_reboot"] == {"pending": False, "reasons": []}
    assert data["ams"]["installed"] is False
    assert data["sql"] == {"host": "sql1.corp.example.test", "port": 1433, "tcp": True}
    assert "gmsa_test" not in data  # needs AD: the service phase proves it instead


def test_member_servers_ship_without_the_ad_module():
    assert node_facts(world(ad_module=False))["ad_module"]["install_state"] == "Available"


def test_sql_facts_as_the_service_account():
    sql = sql_facts(world())
    assert sql["query_ok"] and sql["login"] == GMSA
    assert sql["engine_edition"] == 3
    assert sql["database_exists"] and sql["login_exists"]
    assert sql["database_roles"] == ["db_owner"]


@pytest.mark.parametrize(
    ("spec", "node", "path", "expected"),
    [
        ("feature_missing:AMS1", "AMS1", ("feature", "install_state"), "Available"),
        ("pending_reboot:AMS1", "AMS1", ("pending_reboot", "pending"), True),
        ("sql_unreachable:AMS2", "AMS2", ("sql", "tcp"), False),
        ("sql_unreachable:AMS2", "AMS1", ("sql", "tcp"), True),
        ("version_mismatch:AMS2", "AMS2", ("ams", "registry_version"), "3.0.1638.0"),
    ],
)
def test_node_facts_under_faults(spec, node, path, expected):
    value = node_facts(world(spec), node)
    for key in path:
        value = value[key]
    assert value == expected


@pytest.mark.parametrize(
    ("spec", "user", "key", "expected"),
    [
        ("sql_express", GMSA, "engine_edition", 4),
        ("sql_no_database", "CORP\\operator", "database_exists", False),
        ("sql_no_login", "CORP\\operator", "login_exists", False),
    ],
)
def test_sql_facts_under_faults(spec, user, key, expected):
    assert sql_facts(world(spec), user=user)[key] == expected


def test_sql_without_a_login_refuses_the_service_account():
    sql = sql_facts(world("sql_no_login"))
    assert not sql["query_ok"] and "Login failed for user" in sql["error"]


def test_sql_over_a_plain_session_is_anonymous():
    """Rule second_hop: the operator's NTLM session reaches SQL Server as ANONYMOUS LOGON."""
    sql = sql_facts(world(), user="CORP\\operator", auth="negotiate")
    assert "ANONYMOUS LOGON" in sql["error"]
    assert sql_facts(world(), user="CORP\\operator", auth="credssp")["query_ok"] is True


def test_gmsa_task_logon_proves_the_node_may_retrieve_the_password():
    store = world("gmsa_not_allowed:AMS2", "batch_logon_gmsa:AMS1", "batch_logon_gmsa:AMS2")
    assert as_gmsa(store, "AMS1").ok
    refused = as_gmsa(store, "AMS2")
    assert not refused.ok and "may not retrieve" in refused.error_message


def test_gmsa_without_batch_logon_cannot_run_a_task():
    result = as_gmsa(world(), "AMS1")  # Windows' default holders exclude the gMSA
    assert not result.ok and "Log on as a batch job" in result.error_message


def test_gmsa_missing_or_too_new_kds_key_fails_the_logon():
    for spec in ("gmsa_missing", "kds_too_new"):
        result = as_gmsa(world(spec, "batch_logon_gmsa:AMS1"), "AMS1")
        assert not result.ok and "may not retrieve" in result.error_message, spec


def test_second_hop_blocks_ad_but_not_credssp_or_a_task():
    store = world()
    blocked = domain_facts(store, auth="negotiate")
    assert set(blocked["errors"]) == {"domain", "kds", "gmsa"}
    assert "Unable to contact the server" in blocked["errors"]["gmsa"]
    assert domain_facts(store, auth="credssp")["errors"] == {}
    assert domain_facts(store, auth="task")["errors"] == {}


def test_domain_facts_without_the_module_report_it():
    data = domain_facts(world(ad_module=False))
    assert "ActiveDirectory" in data["errors"]["module"]


def test_node_in_another_domain_cannot_use_the_gmsa():
    store = world("batch_logon_gmsa:AMS2")
    store.state["nodes"]["AMS2"]["domain"] = "other.example.test"
    store.state["domain"]["gmsas"]["svc-ams$"]["principals_allowed"].remove("AMS2$")
    assert not as_gmsa(store, "AMS2").ok


def test_group_principal_is_expanded():
    store = world("batch_logon_gmsa:AMS2")
    gmsa = store.state["domain"]["gmsas"]["svc-ams$"]
    gmsa["principals_allowed"] = ["AMS-Nodes"]
    store.state["domain"]["groups"]["AMS-Nodes"] = {"members": ["AMS1$", "AMS2$"]}
    assert as_gmsa(store, "AMS2").ok
    principal = domain_facts(store)["gmsa"]["principals"][0]
    assert principal == {"sam": "AMS-Nodes", "class": "group", "members": ["AMS1$", "AMS2$"]}


def test_wrong_sql_instance_cannot_connect():
    data = sql_facts(world(), SqlServer="sql1.corp.example.test\\OTHER")
    assert "network-related" in data["error"]


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


def test_set_principals_adds_to_what_is_there():
    store = world("gmsa_not_allowed:AMS2")
    gmsa = store.state["domain"]["gmsas"]["svc-ams$"]
    gmsa["principals_allowed"].append("SQL1$")
    params = {"ServiceAccount": GMSA, "Domain": "corp.example.test", "Add": ["AMS1$", "AMS2$"]}
    result = model.prereq_set_gmsa_principals(
        FakeCtx(store, "AMS1", params, auth="task", script=SET_PRINCIPALS)
    )
    assert result["principals_before"] == ["AMS1$", "SQL1$"]
    assert result["added"] == ["AMS2$"]
    assert store.state["domain"]["gmsas"]["svc-ams$"]["principals_allowed"] == [
        "AMS1$",
        "SQL1$",
        "AMS2$",
    ]


@pytest.mark.parametrize(
    ("specs", "auth", "add", "message"),
    [
        ((), "task", ["NOSUCH$"], "identity: 'NOSUCH"),
        (("gmsa_missing",), "task", ["AMS1$"], "Cannot find an object"),
        ((), "negotiate", ["AMS1$"], "Unable to contact the server"),
    ],
)
def test_set_principals_failures(specs, auth, add, message):
    params = {"ServiceAccount": GMSA, "Domain": "corp.example.test", "Add": add}
    with pytest.raises(ScriptFailure, match=message):
        model.prereq_set_gmsa_principals(
            FakeCtx(world(*specs), "AMS1", params, auth=auth, script=SET_PRINCIPALS)
        )


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
    nodes = tuple(NodeInfo(n, n.lower(), i, auth=auth) for i, n in enumerate(store.state["nodes"]))
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
            RunOptions(**(options or {})),
        )
        outcome = STEP.advance(view)
        if isinstance(outcome, Finish):
            return outcome, phases
        phases.append(outcome)
        results[outcome.name] = {a.node: run_action(store, a, auth) for a in outcome.actions}
    raise AssertionError("the step did not finish")


def statuses(finish: Finish) -> dict[str, str]:
    return {c.key: c.status for c in finish.checks}


def test_windows_as_shipped_needs_the_ad_module_first():
    store = world(ad_module=False)
    finish, phases = drive(store)
    assert [p.name for p in phases] == ["probe", "facts", "service", "sql"]
    assert finish.status == "needs_attention"
    check = next(c for c in finish.checks if c.key == "ad_module")
    assert check.status == "fail" and check.fix["params"] == {"FeatureName": "RSAT-AD-PowerShell"}
    finish, phases = drive(store, options={"fix": check.fix["id"]})
    assert phases[0].name == "fix" and phases[0].changes_state
    assert store.state["nodes"]["AMS1"]["features"]["RSAT-AD-PowerShell"] is True
    assert store.state["nodes"]["AMS2"]["features"]["RSAT-AD-PowerShell"] is False
    assert finish.status == "done", finish.summary


def test_default_world_passes_through_scheduled_tasks():
    finish, phases = drive(world())
    assert [p.name for p in phases] == ["probe", "facts", "domain", "service", "sql"]
    assert [a.script for a in phases[2].actions] == ["task_run"]
    assert not any(p.changes_state for p in phases)
    assert finish.status == "done", finish.summary
    found = statuses(finish)
    # Windows grants no gMSA "Log on as a batch job": the task as the account is not verified,
    # and the operator's task reads SQL Server instead.
    assert found["gmsa_test:AMS1"] == "warn"
    assert {s for k, s in found.items() if not k.startswith("gmsa_test:")} <= {"pass", "info"}


def test_gmsa_with_batch_logon_proves_sql_from_every_node():
    finish, phases = drive(world("batch_logon_gmsa:AMS1", "batch_logon_gmsa:AMS2"))
    assert [p.name for p in phases] == ["probe", "facts", "domain", "service"]
    found = statuses(finish)
    assert found["gmsa_test:AMS1"] == found["gmsa_test:AMS2"] == "pass"
    assert found["sql_signin:AMS1"] == found["sql_signin:AMS2"] == "pass"
    assert finish.status == "done", finish.summary


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
        (("gmsa_not_allowed:AMS2", "batch_logon_gmsa:AMS2"), "gmsa_test:AMS2", "fail"),
        (("feature_missing:AMS1",), "feature:AMS1", "fail"),
        (("sql_express",), "sql_edition", "fail"),
        (("sql_unreachable:AMS2",), "sql_tcp:AMS2", "fail"),
        (("sql_no_database",), "sql_database", "fail"),
        (("sql_no_login",), "sql_login", "fail"),
        (("sql_no_login", "batch_logon_gmsa:AMS1"), "sql_signin:AMS1", "fail"),
        (("version_mismatch:AMS2",), "ams_installed:AMS2", "fail"),
        (("old_dc",), "dc_version", "fail"),
        (("pending_reboot:AMS1",), "reboot:AMS1", "warn"),
        (("no_stored_passwords:AMS1",), "domain_facts", "fail"),
    ],
)
def test_each_fault_surfaces_as_its_check(specs, key, status):
    finish, _ = drive(world(*specs))
    assert statuses(finish)[key] == status
    expected = "needs_attention" if status == "fail" else "done"
    assert finish.status == expected


def test_stored_password_policy_has_its_own_message():
    finish, _ = drive(world("no_stored_passwords:AMS1"))
    check = next(c for c in finish.checks if c.key == "domain_facts")
    assert "0x80070520" in check.evidence and "CredSSP" in check.evidence


def test_credssp_runs_the_domain_checks_directly():
    finish, phases = drive(world("no_stored_passwords:AMS1"), auth="credssp")
    assert [a.script for a in phases[2].actions] == ["prereq_domain_facts"]
    assert finish.status == "done", finish.summary
    assert statuses(finish)["kds"] == "pass"


def test_missing_license_fails():
    finish, _ = drive(world(), license_key=False)
    assert statuses(finish)["license"] == "fail"


def test_feature_fix_then_checks_pass():
    store = world("feature_missing:AMS1", "feature_missing:AMS2")
    finish, _ = drive(store)
    fix = next(c.fix for c in finish.checks if c.key == "feature:AMS1")
    assert fix["nodes"] == ["AMS1", "AMS2"]
    finish, phases = drive(store, options={"fix": fix["id"]})
    assert phases[0].name == "fix" and phases[0].changes_state
    assert finish.status == "done", finish.summary


def test_principals_fix_names_every_node_and_keeps_others():
    store = world("gmsa_not_allowed:AMS2")
    store.state["domain"]["gmsas"]["svc-ams$"]["principals_allowed"].append("SQL1$")
    finish, _ = drive(store)
    check = next(c for c in finish.checks if c.key == "gmsa_principals")
    assert check.fix["params"]["Add"] == ["AMS1$", "AMS2$"]
    assert "AMS1$, SQL1$, AMS2$" in check.fix["label"]
    finish, _ = drive(store, options={"fix": check.fix["id"]})
    assert finish.status == "done", finish.summary
    allowed = store.state["domain"]["gmsas"]["svc-ams$"]["principals_allowed"]
    assert allowed == ["AMS1$", "SQL1$", "AMS2$"]


def test_restart_fix_reprobes_until_the_node_is_back():
    store = world("pending_reboot:AMS1")
    finish, _ = drive(store)
    fix = next(c.fix for c in finish.checks if c.key == "reboot:AMS1")
    finish, phases = drive(store, options={"fix": fix["id"]})
    assert [p.name for p in phases][:2] == ["fix", "probe"]
    assert statuses(finish)["reboot:AMS1"] == "pass"


def test_restart_waits_while_the_node_is_down():
    store = world("pending_reboot:AMS1", "unreachable:AMS1")
    finish, phases = drive(store, options={"fix": "restart"}, limit=40)
    probes = [p for p in phases if p.name.startswith("probe")]
    assert len(probes) == 12
    assert all(p.wait_before > 0 for p in probes[1:])
    assert statuses(finish)["winrm:AMS1"] == "fail"
