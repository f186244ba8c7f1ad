"""Prerequisites.advance() driven with fabricated results: every failure gives the right verdict."""

import copy

import pytest

from app.guides.cluster.prerequisites import STEP
from app.guides.shared import checks
from app.guides.shared.prerequisites import requested_fix
from app.steps import ActionResult, Finish, NodeInfo, Phase, RunOptions, RunView

NODES = ("AMS1", "AMS2")
INPUTS = {
    "ams_version": "2.1.1069.0",
    "gmsa": "CORP\\svc-ams$",
    "sql_connection_string": "Server=sql1.corp.example.test;Database=AccessManager;"
    "Integrated Security=true",
}
NOW = "2026-11-25T12:00:00Z"


def probe_data(node):
    return {
        "computer_name": node,
        "user": "CORP\\op",
        "is_admin": True,
        "ps_version": "5.1",
        "domain": "corp.example.test",
        "boot_time": "2026-11-20T08:00:00Z",
    }


def facts_data(node):
    return {
        "computer_name": node,
        "domain": "corp.example.test",
        "part_of_domain": True,
        "os": {
            "caption": "Microsoft Windows Server 2019 Datacenter",
            "version": "10.0.17763",
            "build": "17763",
            "product_type": 3,
        },
        "feature": {"name": "Failover-Clustering", "install_state": "Installed"},
        "ad_module": {"name": "RSAT-AD-PowerShell", "install_state": "Installed"},
        "pending_reboot": {"pending": False, "reasons": []},
        "ams": {
            "installed": False,
            "registry_version": None,
            "display_version": None,
            "service": None,
        },
        "sql": {"host": "sql1.corp.example.test", "port": 1433, "tcp": True},
    }


def sql_data():
    """prereq_sql_facts as the gMSA, run by a scheduled task."""
    return {
        "identity": "CORP\\svc-ams$",
        "login": "CORP\\svc-ams$",
        "query_ok": True,
        "error": None,
        "edition": "Enterprise Edition (64-bit)",
        "engine_edition": 3,
        "version": "15.0.4375.4",
        "can_view_logins": True,
        "database_exists": True,
        "login_exists": True,
        "default_database": "AccessManager",
        "database_user": "CORP\\svc-ams$",
        "database_roles": ["db_owner"],
    }


def domain_data():
    return {
        "now_utc": NOW,
        "domain": {
            "dns_root": "corp.example.test",
            "netbios": "CORP",
            "dn": "DC=corp,DC=example,DC=test",
        },
        "domain_controllers": [
            {
                "name": "DC1",
                "hostname": "dc1.corp.example.test",
                "os": "Windows Server 2019 Datacenter",
                "os_version": "10.0 (17763)",
                "site": "Default",
            }
        ],
        "kds_root_keys": [
            {
                "key_id": "k1",
                "created": "2026-10-01T00:00:00Z",
                "effective_time": "2026-10-01T00:00:00Z",
            }
        ],
        "gmsa": {
            "found": True,
            "sam": "svc-ams$",
            "enabled": True,
            "account_not_delegated": True,
            "dns_host_name": "svc-ams.corp.example.test",
            "principals": [
                {"sam": "AMS1$", "class": "computer", "members": []},
                {"sam": "AMS2$", "class": "computer", "members": []},
            ],
            "spns": [],
            "member_of": [],
            "domain_admin": False,
        },
        "errors": {},
    }


def ok(node, script, data):
    return ActionResult(node, script, "succeeded", data)


def failed(node, script, category, message):
    return ActionResult(node, script, "failed", None, category, message)


def good_results(nodes=NODES):
    return {
        "probe": {n: ok(n, "connection_probe", probe_data(n)) for n in nodes},
        "facts": {n: ok(n, "prereq_node_facts", facts_data(n)) for n in nodes},
        "domain": {nodes[0]: ok(nodes[0], "task_run", domain_data())},
        "service": {n: ok(n, "task_run", sql_data()) for n in nodes},
    }


def view(results=None, inputs=None, nodes=NODES, secrets=("license_key",), options=None):
    return RunView(
        deployment_name="test",
        domain_fqdn="corp.example.test",
        nodes=tuple(NodeInfo(n, n.lower(), i) for i, n in enumerate(nodes)),
        inputs=dict(INPUTS if inputs is None else inputs),
        all_inputs={},
        secret_names=frozenset(secrets),
        results=results or {},
        options=RunOptions(**(options or {})),
    )


def finish_with(results=None, **kwargs) -> Finish:
    outcome = STEP.advance(view(results or good_results(), **kwargs))
    assert isinstance(outcome, Finish)
    return outcome


def by_key(outcome: Finish):
    return {c.key: c for c in outcome.checks}


# ---------------------------------------------------------------------------------------------
# Phases
# ---------------------------------------------------------------------------------------------


def test_phases_run_in_order_and_read_only():
    results = {}
    names = []
    for expected in ("probe", "facts", "domain", "service"):
        phase = STEP.advance(view(results))
        assert isinstance(phase, Phase)
        assert phase.name == expected
        assert not phase.changes_state
        names.append(phase.name)
        results[phase.name] = good_results()[phase.name]
    assert isinstance(STEP.advance(view(results)), Finish)


def test_facts_get_the_parameters_from_the_inputs():
    results = {"probe": good_results()["probe"]}
    phase = STEP.advance(view(results))
    params = phase.actions[0].params
    assert params == {"SqlHost": "sql1.corp.example.test", "SqlPort": 1433}


def test_domain_phase_runs_on_the_first_reachable_node():
    results = good_results()
    results["probe"]["AMS1"] = failed("AMS1", "connection_probe", "unreachable", "refused")
    del results["facts"], results["domain"], results["service"]
    facts = STEP.advance(view(results))
    assert [a.node for a in facts.actions] == ["AMS2"]
    results["facts"] = {"AMS2": good_results()["facts"]["AMS2"]}
    domain = STEP.advance(view(results))
    assert [a.node for a in domain.actions] == ["AMS2"]
    # NTLM or Kerberos sessions have no second hop: AD is read by a task with the operator's logon
    assert domain.actions[0].script == "task_run"
    assert domain.actions[0].params == {
        "ScriptName": "prereq_domain_facts",
        "Parameters": {"ServiceAccount": "CORP\\svc-ams$", "Domain": "corp.example.test"},
        "TimeoutSeconds": 300,
    }
    assert domain.actions[0].secrets == {
        "TaskUser": "winrm_username",
        "TaskPassword": "winrm_password",
    }


def test_no_node_reachable_finishes_at_once():
    results = {"probe": {n: failed(n, "connection_probe", "auth_failed", "401") for n in NODES}}
    outcome = finish_with(results)
    assert outcome.status == "needs_attention"
    assert outcome.failed_nodes == NODES
    assert "refused the credentials" in by_key(outcome)["winrm:AMS1"].remediation


def test_preview_lists_the_read_only_phases():
    phases = STEP.preview(view())
    assert [p.name for p in phases] == ["probe", "facts", "domain", "service"]
    assert [p.name for p in STEP.preview(view(inputs={}))] == ["probe"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ams_version", "two"),
        ("gmsa", "svc-ams"),
        ("sql_connection_string", "Server=.\\SQLEXPRESS;Database=AccessManager"),
    ],
)
def test_invalid_inputs_fail_before_anything_runs(field, value):
    outcome = STEP.advance(view(inputs={**INPUTS, field: value}))
    assert isinstance(outcome, Finish)
    assert outcome.status == "needs_attention"
    assert outcome.checks[0].key == f"input:{field}"


# ---------------------------------------------------------------------------------------------
# Verdicts, one failure at a time
# ---------------------------------------------------------------------------------------------


def test_everything_good_is_done():
    outcome = finish_with()
    assert outcome.status == "done"
    assert outcome.failed_nodes == ()
    assert {c.status for c in outcome.checks} == {"pass", "info"}
    assert by_key(outcome)["node_count"].remediation.startswith("A quorum witness is required")


def set_in(data, path, value):
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


FACT_CASES = [
    # (path in facts of AMS2, value, check key, status, text expected in evidence/remediation)
    (("domain",), "other.example.test", "domain:AMS2", "fail", "other.example.test"),
    (("part_of_domain",), False, "domain:AMS2", "fail", "workgroup"),
    (("os", "version"), "6.3.9600", "os:AMS2", "warn", "2012 R2"),
    (("os", "version"), "6.1.7601", "os:AMS2", "fail", "2012 R2 or later"),
    (("os", "caption"), "Microsoft Windows 10 Enterprise", "os:AMS2", "fail", "Windows Server"),
    (("feature", "install_state"), "Available", "feature:AMS2", "fail", "Install-WindowsFeature"),
    (("feature", "install_state"), "InstallPending", "feature:AMS2", "fail", "Restart AMS2"),
    (
        ("pending_reboot",),
        {"pending": True, "reasons": ["Windows Update"]},
        "reboot:AMS2",
        "warn",
        "Windows Update",
    ),
    (("sql", "tcp"), False, "sql_tcp:AMS2", "fail", "sql1.corp.example.test:1433"),
]


@pytest.mark.parametrize(("path", "value", "key", "status", "text"), FACT_CASES)
def test_node_fact_failures(path, value, key, status, text):
    results = good_results()
    data = copy.deepcopy(results["facts"]["AMS2"].data)
    set_in(data, path, value)
    results["facts"]["AMS2"] = ok("AMS2", "prereq_node_facts", data)
    outcome = finish_with(results)
    check = by_key(outcome)[key]
    assert check.status == status
    assert text in check.evidence + check.remediation
    assert check.node == "AMS2"
    if status == "fail":
        assert outcome.status == "needs_attention"
        assert outcome.failed_nodes == ("AMS2",)
    else:
        assert outcome.status == "done"


SQL_CASES = [
    ("engine_edition", 4, "sql_edition", "fail", "Express"),
    ("version", "13.0.5026.0", "sql_version", "fail", "SQL Server 2017"),
    ("database_exists", False, "sql_database", "fail", "CREATE DATABASE [AccessManager];"),
    ("login_exists", False, "sql_login", "fail", "CREATE LOGIN [CORP\\svc-ams$] FROM WINDOWS"),
    ("database_roles", [], "sql_login", "fail", "ALTER ROLE db_owner ADD MEMBER [CORP\\svc-ams$];"),
]


@pytest.mark.parametrize(("field", "value", "key", "status", "text"), SQL_CASES)
def test_sql_failures(field, value, key, status, text):
    results = good_results()
    for node in NODES:
        results["service"][node].data[field] = value
    check = by_key(finish_with(results))[key]
    assert check.status == status
    assert text in check.evidence + check.remediation


def test_sql_tsql_for_a_missing_login_is_complete():
    results = good_results()
    for node in NODES:
        sql = results["service"][node].data
        sql.update(login_exists=False, database_user=None, database_roles=[])
    remediation = by_key(finish_with(results))["sql_login"].remediation
    assert remediation.splitlines()[1:] == [
        "CREATE LOGIN [CORP\\svc-ams$] FROM WINDOWS WITH DEFAULT_DATABASE = [AccessManager];",
        "USE [AccessManager];",
        "CREATE USER [CORP\\svc-ams$] FOR LOGIN [CORP\\svc-ams$];",
        "ALTER ROLE db_owner ADD MEMBER [CORP\\svc-ams$];",
    ]


def test_sql_query_refused_by_the_double_hop_is_a_warning():
    results = good_results()
    for node in NODES:
        results["service"][node] = failed(node, "task_run", "script_error", NO_BATCH)
    results["sql"] = {
        "AMS1": ok(
            "AMS1",
            "task_run",
            {"query_ok": False, "error": "Login failed for user 'NT AUTHORITY\\ANONYMOUS LOGON'."},
        )
    }
    outcome = finish_with(results)
    check = by_key(outcome)["sql_query"]
    assert check.status == "warn"
    assert "second hop" in check.remediation
    assert "could not be verified" in outcome.summary


def test_sql_login_invisible_to_the_operator_is_a_warning():
    results = good_results()
    for node in NODES:
        results["service"][node].data.update(login_exists=False, can_view_logins=False)
    assert by_key(finish_with(results))["sql_login"].status == "warn"


NO_BATCH = (
    'CORP\\svc-ams$ may not "Log on as a batch job" on AMS2 (0x80070569), so the scheduled task '
    "could not start."
)
NO_PASSWORD = (
    "The scheduled task could not log on as CORP\\svc-ams$ on AMS2 (0x8007052E): wrong password, "
    "or a service account whose password this node may not retrieve."
)


def test_service_phase_runs_a_task_as_the_gmsa_on_every_node():
    results = good_results()
    del results["service"]
    phase = STEP.advance(view(results))
    assert phase.name == "service" and not phase.changes_state
    assert [a.node for a in phase.actions] == list(NODES)
    action = phase.actions[0]
    assert (action.script, action.secrets) == ("task_run", {})
    assert action.params["ServiceAccount"] == "CORP\\svc-ams$"
    assert action.params["ScriptName"] == "prereq_sql_facts"


def test_node_that_cannot_retrieve_the_password_fails():
    results = good_results()
    results["service"]["AMS2"] = failed("AMS2", "task_run", "script_error", NO_PASSWORD)
    outcome = finish_with(results)
    check = by_key(outcome)["gmsa_test:AMS2"]
    assert check.status == "fail"
    assert "klist -li 0x3e7 purge" in check.remediation
    assert outcome.failed_nodes == ("AMS2",)


def test_missing_batch_logon_right_is_unverified_and_falls_back_to_the_operator():
    results = good_results()
    for node in NODES:
        results["service"][node] = failed(node, "task_run", "script_error", NO_BATCH)
    phase = STEP.advance(view(results))
    assert phase.name == "sql"
    assert phase.actions[0].params["ScriptName"] == "prereq_sql_facts"
    assert "ServiceAccount" not in phase.actions[0].params
    results["sql"] = {"AMS1": ok("AMS1", "task_run", {**sql_data(), "identity": "CORP\\op"})}
    outcome = finish_with(results)
    check = by_key(outcome)["gmsa_test:AMS2"]
    assert check.status == "warn"
    assert "Log on as a service" in check.remediation
    assert by_key(outcome)["sql_login"].status == "pass"
    assert outcome.status == "done"


def test_gmsa_without_a_login_fails_its_sign_in():
    results = good_results()
    results["service"]["AMS2"].data.update(
        query_ok=False, error="Login failed for user 'CORP\\svc-ams$'."
    )
    check = by_key(finish_with(results))["sql_signin:AMS2"]
    assert check.status == "fail"
    assert "CREATE LOGIN" in check.remediation


def test_missing_ad_module_offers_to_install_it_on_the_domain_node():
    results = good_results()
    del results["domain"], results["service"]
    for node in NODES:
        results["facts"][node].data["ad_module"]["install_state"] = "Available"
    phase = STEP.advance(view(results))
    assert phase.name == "service"  # the domain checks wait for the module
    results["service"] = good_results()["service"]
    outcome = finish_with(results)
    check = by_key(outcome)["ad_module"]
    assert check.status == "fail"
    assert check.fix["params"] == {"FeatureName": "RSAT-AD-PowerShell"}
    assert check.fix["nodes"] == ["AMS1"]
    fix = STEP.advance(view(options={"fix": "install_ad_module"}))
    assert [(a.node, a.script, a.params) for a in fix.actions] == [
        ("AMS1", "prereq_install_feature", {"FeatureName": "RSAT-AD-PowerShell"})
    ]


def test_sql_port_from_the_connection_string():
    inputs = {
        **INPUTS,
        "sql_connection_string": "Server=tcp:sql1.corp.example.test\\AMS,14330;"
        "Database=AMSDB;Integrated Security=true",
    }
    phase = STEP.advance(view({"probe": good_results()["probe"]}, inputs=inputs))
    params = phase.actions[0].params
    assert (params["SqlHost"], params["SqlPort"]) == ("sql1.corp.example.test", 14330)
    target, _ = checks.parse_target(inputs)
    assert target.sql_params()["Database"] == "AMSDB"


DOMAIN_CASES = [
    (("domain_controllers", 0, "os_version"), "6.2 (9200)", "dc_version", "fail", "2012 R2"),
    (("kds_root_keys",), [], "kds", "fail", "Add-KdsRootKey"),
    (
        ("kds_root_keys", 0, "effective_time"),
        "2026-11-25T09:00:00Z",
        "kds",
        "fail",
        "2026-11-25 19:00 UTC",
    ),
    (("gmsa",), {"found": False, "sam": "svc-ams$"}, "gmsa", "fail", "New-ADServiceAccount"),
    (
        ("gmsa", "account_not_delegated"),
        False,
        "gmsa_settings",
        "fail",
        "-AccountNotDelegated $true",
    ),
    (("gmsa", "enabled"), False, "gmsa_settings", "fail", "disabled"),
    (("gmsa", "domain_admin"), True, "gmsa_settings", "fail", "Domain Admins"),
    (("domain", "netbios"), "OTHER", "gmsa_domain", "fail", "OTHER"),
    (("domain", "dns_root"), "other.test", "domain_name", "fail", "other.test"),
    (("errors",), {"kds": "Unable to contact the server."}, "kds", "warn", "second hop"),
    (("errors",), {"domain": "Access is denied."}, "dc_version", "warn", "Not verified"),
    (("errors",), {"gmsa": "Unable to contact the server."}, "gmsa", "warn", "second hop"),
]


@pytest.mark.parametrize(("path", "value", "key", "status", "text"), DOMAIN_CASES)
def test_domain_failures(path, value, key, status, text):
    results = good_results()
    set_in(results["domain"]["AMS1"].data, path, value)
    outcome = finish_with(results)
    check = by_key(outcome)[key]
    assert check.status == status
    assert text in check.evidence + check.remediation
    assert outcome.status == ("needs_attention" if status == "fail" else "done")


def test_kds_key_not_yet_usable_says_when():
    results = good_results()
    results["domain"]["AMS1"].data["kds_root_keys"][0]["effective_time"] = "2026-11-25T11:00:00Z"
    check = by_key(finish_with(results))["kds"]
    assert "2026-11-25 21:00 UTC" in check.evidence
    assert "in about 9 h" in check.evidence


def test_principals_missing_a_node_offer_a_fix_naming_all_nodes():
    results = good_results()
    gmsa = results["domain"]["AMS1"].data["gmsa"]
    gmsa["principals"] = [
        {"sam": "AMS1$", "class": "computer", "members": []},
        {"sam": "WEB9$", "class": "computer", "members": []},
    ]
    outcome = finish_with(results)
    check = by_key(outcome)["gmsa_principals"]
    assert check.status == "fail"
    assert "Missing: AMS2$" in check.evidence
    assert check.fix["script"] == "prereq_set_gmsa_principals"
    # the script adds the nodes to the list it reads fresh; the screen shows the whole list
    assert check.fix["params"]["Add"] == ["AMS1$", "AMS2$"]
    assert check.fix["principals_after"] == ["AMS1$", "WEB9$", "AMS2$"]
    assert "the list becomes: AMS1$, WEB9$, AMS2$" in check.fix["label"]
    assert check.fix["nodes"] == ["AMS1"]


def test_group_principal_counts_its_members():
    results = good_results()
    results["domain"]["AMS1"].data["gmsa"]["principals"] = [
        {"sam": "AMS-Nodes", "class": "group", "members": ["AMS1$", "AMS2$"]}
    ]
    assert by_key(finish_with(results))["gmsa_principals"].status == "pass"


@pytest.mark.parametrize(
    ("version", "status", "text"),
    [
        ("1.0.5500.0", "fail", "shared cluster disk and a registry checkpoint"),
        ("2.1.1069.0", "pass", "will be installed"),
        ("3.0.1638.0", "warn", "load balancer"),
        ("4.0.1.0", "warn", "knows versions 2.x and 3.x"),
    ],
)
def test_version_choice(version, status, text):
    check = by_key(finish_with(inputs={**INPUTS, "ams_version": version}))["ams_version"]
    assert check.status == status
    assert text in check.evidence + check.remediation


@pytest.mark.parametrize(
    ("installed", "status", "text"),
    [
        ("2.1.1069.0", "pass", "already installed"),
        ("2.1.1000.0", "fail", "same version at all times"),
        ("3.0.1638.0", "fail", "must never run at the same time"),
    ],
)
def test_installed_versions(installed, status, text):
    results = good_results()
    results["facts"]["AMS2"].data["ams"].update(installed=True, registry_version=installed)
    outcome = finish_with(results)
    check = by_key(outcome)["ams_installed:AMS2"]
    assert check.status == status
    assert text in check.evidence + check.remediation
    assert outcome.artifacts["installed_versions"] == {"AMS1": None, "AMS2": installed}


def test_license_is_checked_by_name_only():
    assert by_key(finish_with())["license"].status == "pass"
    outcome = finish_with(secrets=())
    assert by_key(outcome)["license"].status == "fail"
    assert outcome.status == "needs_attention"
    assert outcome.failed_nodes == ()


def test_odd_node_count_is_informational():
    nodes = ("AMS1", "AMS2", "AMS3")
    check = by_key(finish_with(good_results(nodes), nodes=nodes))["node_count"]
    assert check.status == "info"
    assert "optional" in check.remediation


@pytest.mark.parametrize(
    ("category", "text"),
    [
        ("unreachable", "did not answer on its WinRM port"),
        ("auth_failed", "refused the credentials"),
        ("access_denied", "local administrator"),
        ("timeout", "did not finish in time"),
    ],
)
def test_probe_failure_categories(category, text):
    results = good_results()
    results["probe"]["AMS2"] = failed("AMS2", "connection_probe", category, "detail")
    del results["facts"]["AMS2"]
    outcome = finish_with(results)
    check = by_key(outcome)["winrm:AMS2"]
    assert check.status == "fail"
    assert check.evidence == f"{category}: detail"
    assert text in check.remediation
    assert outcome.failed_nodes == ("AMS2",)


def test_probe_without_admin_rights_fails():
    results = good_results()
    results["probe"]["AMS1"].data["is_admin"] = False
    assert by_key(finish_with(results))["winrm:AMS1"].status == "fail"


def test_facts_script_failure_is_reported():
    results = good_results()
    results["facts"]["AMS2"] = failed("AMS2", "prereq_node_facts", "script_error", "boom")
    check = by_key(finish_with(results))["facts:AMS2"]
    assert (check.status, check.evidence) == ("fail", "script_error: boom")


def test_domain_script_failure_is_reported():
    results = good_results()
    results["domain"]["AMS1"] = failed("AMS1", "task_run", "timeout", "slow")
    assert by_key(finish_with(results))["domain_facts"].status == "fail"


# ---------------------------------------------------------------------------------------------
# Offered fixes
# ---------------------------------------------------------------------------------------------


def test_feature_fix_covers_every_node_missing_it():
    results = good_results()
    for node in NODES:
        results["facts"][node].data["feature"]["install_state"] = "Available"
    fix = by_key(finish_with(results))["feature:AMS1"].fix
    assert fix == {
        "id": "install_feature:AMS1,AMS2",
        "script": "prereq_install_feature",
        "label": "Install Failover Clustering on AMS1, AMS2",
        "nodes": ["AMS1", "AMS2"],
        "params": {},
    }


def test_accepted_fix_runs_first_and_changes_state():
    fix = "install_feature:AMS2"  # the offer's id names the nodes it was offered for
    phase = STEP.advance(view(options={"fix": fix}))
    assert phase.name == "fix" and phase.changes_state
    assert [(a.node, a.script) for a in phase.actions] == [("AMS2", "prereq_install_feature")]
    results = {"fix": {"AMS2": ok("AMS2", "prereq_install_feature", {})}}
    assert STEP.advance(view(results, options={"fix": fix})).name == "probe"


@pytest.mark.parametrize(
    "raw",
    [
        "format_disk:AMS1",
        "install_feature:EVIL",
        "rm -rf",
        "",
    ],
)
def test_unknown_or_foreign_fixes_are_ignored(raw):
    target, _ = checks.parse_target(INPUTS)
    assert requested_fix(view(options={"fix": raw}), target) is None


def test_principals_fix_is_rebuilt_from_trusted_values():
    raw = "set_gmsa_principals:AMS1"
    target, _ = checks.parse_target(INPUTS)
    fix = requested_fix(view(options={"fix": raw}), target)
    assert fix["script"] == "prereq_set_gmsa_principals"
    assert fix["params"] == {
        "ServiceAccount": "CORP\\svc-ams$",
        "Add": ["AMS1$", "AMS2$"],
        "Domain": "corp.example.test",
    }


def test_a_fix_restarts_only_the_nodes_it_was_offered_for():
    """The operator accepted "Restart AMS2": AMS1 must not be restarted too; a bare kind (older
    clients) still means every targeted node, and names are matched as the deployment spells them."""
    one = STEP.advance(view(options={"fix": "restart:ams2"}))
    assert [(a.node, a.script) for a in one.actions] == [("AMS2", "prereq_restart_node")]
    every = STEP.advance(view(options={"fix": "restart"}))
    assert [a.node for a in every.actions] == ["AMS1", "AMS2"]
    offered = by_key(finish_with(good_results()))  # nothing to fix: no offer at all
    assert all(c.fix is None or c.fix["id"] != "restart" for c in offered.values())


def test_run_options_refuse_what_is_not_a_fix_id():
    with pytest.raises(TypeError):
        RunOptions(fix=42)
    with pytest.raises(TypeError):
        RunOptions(fix={"id": "restart", "nodes": ["AMS1"]})
    with pytest.raises(ValueError):
        RunOptions(fix="restart:" + "A" * 400)
    with pytest.raises(ValueError, match="Unknown run options: all_nodes"):
        RunOptions.from_json({"fix": "restart", "all_nodes": ["AMS1"]})
    kept = RunOptions(decision="retry", nodes=["AMS2"], queue=("a", "b"))
    assert RunOptions.from_json(kept.as_json()) == kept
    assert kept.as_json() == {"decision": "retry", "nodes": ["AMS2"], "queue": ["a", "b"]}


def test_restart_fix_reprobes_until_the_boot_time_changes():
    options = {"fix": "restart:AMS1"}
    phase = STEP.advance(view(options=options))
    assert phase.actions[0].params == {"DelaySeconds": 10}
    results = {
        "fix": {"AMS1": ok("AMS1", "prereq_restart_node", {"boot_time": "2026-11-20T08:00:00Z"})}
    }
    results["probe"] = {n: failed(n, "connection_probe", "unreachable", "down") for n in NODES}
    second = STEP.advance(view(results, options=options))
    assert second.name == "probe-2" and second.wait_before > 0
    results["probe-2"] = good_results()["probe"]  # answers, but with the old boot time
    third = STEP.advance(view(results, options=options))
    assert third.name == "probe-3"
    back = good_results()["probe"]
    back["AMS1"].data["boot_time"] = "2026-11-25T12:05:00Z"
    results["probe-3"] = back
    assert STEP.advance(view(results, options=options)).name == "facts"
