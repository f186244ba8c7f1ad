"""One test per rule in app/lab/rules.py: a script that breaks the rule fails the way Windows does,
and the product's own script, which follows it, gets through.

Where the rule lives in the protocol (shells, processes, restarts, SecureStrings) the test drives the
real pypsrp client against a LabServer; where it lives in a model (the installer, AD, the task
logon) it calls the model as the dispatcher would."""

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from psrpcore.types import PSSecureString
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.wsman import WSMan

from app.lab import rules, scenarios
from app.lab.context import ScriptFailure
from app.lab.dispatch import (
    SECURE_STRING_TEXT,
    Dispatcher,
    LabModelError,
    ScriptCatalog,
    bind,
    check_reaches,
    param_types,
)
from app.lab.handlers import HANDLERS, ams, handler, tasks
from app.lab.handlers import prerequisites as prereq
from app.lab.server import LabServer
from app.lab.store import LabStore
from app.remote import scripts
from app.remote.runner import Connection, NodeSession, run_script
from app.steps import Action, NodeInfo
from app.wizard import route
from tests.lab.cluster_world import BlobStore
from tests.lab.conftest import PASSWORD, SCRIPTS, USER, script_text
from tests.lab.fake_ctx import FakeCtx, FakeStore, run_action

ROOT = Path(__file__).resolve().parents[2]
NODES = ["AMS1", "AMS2"]
GMSA = "CORP\\svc-ams$"
INSTALLER = "C:\\Windows\\Temp\\LithnetAccessManagerService-2.1.1069.0-x64.exe"
PROPERTIES = {"USER_NAME": GMSA, "SQLSERVER": "sql1.corp.example.test", "INSTALL_SQL_EXPRESS": "0"}


def state(*specs: str) -> dict:
    world = scenarios.default_state(NODES)
    for spec in specs:
        scenarios.apply_fault(world, spec)
    return world


def node_info(name: str = "AMS1", auth: str = "negotiate") -> NodeInfo:
    return NodeInfo(name, name.lower(), NODES.index(name), auth=auth)


@pytest.fixture
def lab(tmp_path):
    """The strict default world behind a LabServer that also knows the test scripts."""
    store = LabStore(tmp_path / "lab" / "state.json")
    store.replace(state("ad_module:AMS1"))
    server = LabServer(store, NODES, 0, USER, PASSWORD, extra_scripts_dirs=[SCRIPTS]).start()
    yield store, server
    server.stop()


def connection(server: LabServer, node: str = "AMS1") -> Connection:
    return Connection(
        "127.0.0.1",
        port=server.ports[node],
        auth="ntlm",
        username=USER,
        password=PASSWORD,
        connection_timeout=3,
        read_timeout=10,
    )


def wsman(server: LabServer, node: str = "AMS1") -> WSMan:
    return WSMan(
        "127.0.0.1",
        port=server.ports[node],
        username=USER,
        password=PASSWORD,
        ssl=False,
        auth="ntlm",
        connection_timeout=5,
    )


# ---------------------------------------------------------------------------------------------
# The list itself
# ---------------------------------------------------------------------------------------------


def test_every_rule_names_a_test_that_exists():
    names = [rule.name for rule in rules.RULES]
    assert len(names) == len(set(names))
    for rule in rules.RULES:
        path, _, function = rule.test.partition("::")
        text = (ROOT / path).read_text(encoding="utf-8")
        assert re.search(rf"^def {function}\(", text, re.MULTILINE), rule.name
        assert rule.source and rule.enforcement and rule.section, rule.name


def test_the_lab_readme_lists_every_rule():
    readme = (ROOT / "app" / "lab" / "README.md").read_text(encoding="utf-8")
    for rule in rules.RULES:
        assert f"`{rule.name}`" in readme, rule.name


# ---------------------------------------------------------------------------------------------
# Section 1: the second hop, and the task that avoids it
# ---------------------------------------------------------------------------------------------


def test_second_hop(lab):
    """Over a plain NTLM session the domain is unreachable; the same script in a scheduled task
    with the operator's password reads it."""
    _, server = lab
    params = {"ServiceAccount": GMSA, "Domain": "corp.example.test"}
    direct = run_script(connection(server), "prereq_domain_facts", params, timeout=30).data
    assert "Unable to contact the server" in direct["errors"]["kds"]
    action = route.as_operator(node_info(), "prereq_domain_facts", params, label="Domain")
    secure = {"TaskUser": USER, "TaskPassword": PASSWORD}
    through_task = run_script(
        connection(server), action.script, action.params, timeout=60, secure_params=secure
    ).data
    assert through_task["errors"] == {} and through_task["kds_root_keys"]


@pytest.mark.parametrize(
    ("script", "params", "message"),
    [
        ("cluster_create", {"Name": "C", "Node": NODES, "StaticAddress": "10.20.0.9"}, "denied"),
        ("cluster_validate", {"Node": NODES}, "Access is denied"),
        ("prereq_set_gmsa_principals", {"ServiceAccount": GMSA, "Add": ["AMS2$"]}, "contact"),
        ("role_create", {"Name": "AMSWEB", "StaticAddress": "10.20.0.8"}, "Access is denied"),
    ],
)
def test_second_hop_refuses_every_remote_write(script, params, message):
    world = BlobStore(state("ad_module:AMS1"))
    if script == "role_create":  # needs a cluster with AMS on its nodes, made through a task
        with world.transaction() as w:
            for node in w["nodes"].values():
                scenarios.install_ams(node, "2.1.1069.0", GMSA, "Server=sql1")
        cluster = {"Name": "C", "Node": NODES, "StaticAddress": "10.20.0.9"}
        made = route.as_operator(node_info(), "cluster_create", cluster, label="Create")
        assert run_action(world, made).ok
    plain = run_action(world, Action("AMS1", script, params))
    assert not plain.ok and message in plain.error_message
    assert run_action(world, route.as_operator(node_info(), script, params, label="x")).ok


def test_second_hop_model_must_consult_what_it_reaches():
    """A lab model that declares a resource but never asks about it is a lab bug, caught."""
    world = FakeStore(state())
    ctx = FakeCtx(world, "AMS1", {}, script="", reaches=("ad",))
    try:

        @handler("lab_forgets_the_hop", reaches=("ad",))
        def forgets(ctx):
            return {"read": "everything"}

        ctx.script = "lab_forgets_the_hop"
        forgets(ctx)
        with pytest.raises(LabModelError, match=r"without ctx\.reach"):
            check_reaches(ctx)
    finally:
        HANDLERS.pop("lab_forgets_the_hop", None)


def test_task_logon():
    """The task's logon is Windows': the stored-password policy, the batch-logon right, the
    password itself; each failure has its own message."""

    def run(world, secrets=True, password_ok=True):
        action = route.as_operator(node_info(), "prereq_node_facts", {}, label="Facts")
        store = FakeStore(world)
        if not secrets:
            action = type(action)("AMS1", action.script, action.params)
        if not password_ok:
            ctx_dispatcher = Dispatcher(store, ScriptCatalog(), check_password=lambda u, p: False)
            params = scripts.expand_parameters(action.script, dict(action.params))
            params.update({"TaskUser": "CORP\\operator", "TaskPassword": "wrong"})
            ctx = FakeCtx(store, "AMS1", params, script="task_run")
            ctx.dispatcher = ctx_dispatcher
            with pytest.raises(ScriptFailure) as raised:
                tasks.task_run(ctx)
            return str(raised.value)
        result = run_action(store, action)
        return None if result.ok else result.error_message

    assert run(state()) is None
    assert "0x80070520" in run(state("no_stored_passwords:AMS1"))
    assert "Log on as a batch job" in run(state("no_batch_logon:AMS1"))
    assert "0x8007052E" in run(state(), password_ok=False)
    assert "user name and password" in run(state(), secrets=False)


def test_task_logon_messages_are_the_scripts_own():
    """The lab's texts are the ones task_run.ps1 throws, so the step's hints match Windows runs."""
    text = scripts.load("task_run")
    for name in ("STORED_PASSWORDS_REFUSED", "NO_BATCH_LOGON", "GMSA_LOGON_FAILED", "TIMED_OUT"):
        template = getattr(tasks, name)
        for fragment in re.split(r"\{\w+\}", template):
            fragment = fragment.strip()
            if len(fragment) > 12:
                assert fragment in text, (name, fragment)


# ---------------------------------------------------------------------------------------------
# Section 2: modules that are not there
# ---------------------------------------------------------------------------------------------


def test_ad_module_missing():
    world = FakeStore(state())  # member servers as shipped: no RSAT-AD-PowerShell
    params = {"ServiceAccount": GMSA, "Domain": "corp.example.test"}
    facts = run_action(
        world, route.as_operator(node_info(), "prereq_domain_facts", params, label="Domain")
    )
    assert facts.ok and "ActiveDirectory" in facts.data["errors"]["module"]
    fix = route.as_operator(
        node_info(),
        "prereq_set_gmsa_principals",
        {"ServiceAccount": GMSA, "Add": ["AMS2$"]},
        label="Fix",
    )
    refused = run_action(world, fix)
    assert not refused.ok and "was not loaded" in refused.error_message
    install = run_action(
        world, type(fix)("AMS1", "prereq_install_feature", {"FeatureName": "RSAT-AD-PowerShell"})
    )
    assert install.ok and run_action(world, fix).ok


# ---------------------------------------------------------------------------------------------
# Section 3: processes die with the shell
# ---------------------------------------------------------------------------------------------


def _start(server, store, script_name: str) -> dict:
    """Start the installer on AMS1 from a pool that closes straight after."""
    with store.transaction() as world:
        world["nodes"]["AMS1"]["files"][INSTALLER] = {"sha256": "0" * 64, "size": 1, "blob": "0"}
    params = {
        "InstallerPath": INSTALLER,
        "LogPath": "C:\\Windows\\Temp\\i.log",
        "Properties": PROPERTIES,
    }
    transport = wsman(server)
    with RunspacePool(transport) as pool:
        ps = PowerShell(pool)
        text = (
            script_text(script_name)
            if script_name.startswith("lab_")
            else scripts.load(script_name)
        )
        ps.add_script(text)
        ps.add_parameters(params)
        output = ps.invoke()
        assert not ps.had_errors, [str(e) for e in ps.streams.error]
    transport.close()
    import json

    return json.loads(output[-1])


def _poll(server, started: dict) -> dict:
    params = {"ProcessId": started["process_id"], "LogPath": started["log_path"]}
    for _ in range(10):
        status = run_script(connection(server), "ams_install_status", params, timeout=30).data
        if not status["running"]:
            return status
    raise AssertionError("the installer never finished")


def test_shell_job(lab):
    """Started with Start-Process inside the shell, the installer dies with the pool; started by
    Win32_Process Create (ams_install_start.ps1), it finishes after the pool closed."""
    store, server = lab
    HANDLERS["lab_install_in_shell"] = ams.ams_install_start
    try:
        killed = _poll(server, _start(server, store, "lab_install_in_shell"))
    finally:
        HANDLERS.pop("lab_install_in_shell", None)
    assert killed["succeeded"] is False and "terminated" in " ".join(killed["log_tail"])
    assert "lithnetams" not in store.read()["nodes"]["AMS1"]["services"]
    with store.transaction() as world:
        world["nodes"]["AMS1"]["processes"] = {}
    done = _poll(server, _start(server, store, "ams_install_start"))
    assert done["succeeded"] is True and done["exit_code"] == 0
    assert "lithnetams" in store.read()["nodes"]["AMS1"]["services"]


def test_shell_job_rule_reads_the_script_text():
    assert rules.starts_outside_shell(scripts.load("ams_install_start"))
    assert rules.starts_outside_shell(scripts.load("task_run"))
    assert not rules.starts_outside_shell(script_text("lab_install_in_shell"))


# ---------------------------------------------------------------------------------------------
# Section 4: a restart ends every shell
# ---------------------------------------------------------------------------------------------


def test_restart_ends_shells(lab):
    _, server = lab
    transport = wsman(server, "AMS2")
    pool = RunspacePool(transport)
    pool.open()
    first = PowerShell(pool)
    first.add_script(scripts.load("connection_probe"))
    first.invoke()
    assert not first.had_errors
    assert server.shells["AMS2"], "the pool holds a shell"
    server.reboot("AMS2", 1.0)
    assert not server.shells["AMS2"], "the restart ended the shell"
    second = PowerShell(pool)
    second.add_script(scripts.load("connection_probe"))
    with pytest.raises(Exception):  # noqa: B017 - connection refused or shell fault, as Windows
        second.invoke()
    transport.close()


def test_scheduled_restart_ends_shells(lab):
    """`shutdown /r /t N` returns at once and the shell lives on until the restart begins; then
    every shell opened before it is gone, and the product's session opens a new pool."""
    store, server = lab
    session = NodeSession(connection(server, "AMS2"))
    try:
        restart = session.run("prereq_restart_node", {"DelaySeconds": 5}, timeout=30)
        assert restart.data["restart_queued"]
        assert server.shells["AMS2"], "before the restart the pool's shell is still there"
        old_shells = set(server.shells["AMS2"])
        # Shorten the wait: the restart begins (and is over) at the next whole second.
        moment = scenarios.iso(datetime.now(UTC) + timedelta(seconds=1))
        with store.transaction() as world:
            world["nodes"]["AMS2"].update(restart_at=moment, down_until=moment)
        while datetime.now(UTC) <= scenarios.parse_iso(moment):
            time.sleep(0.05)  # the restart is a wall-clock moment (at most 1 s away)
        transport = wsman(server, "AMS2")
        with RunspacePool(transport) as fresh:  # any request reaches the node after the restart
            PowerShell(fresh).add_script(scripts.load("connection_probe")).invoke()
        transport.close()
        assert not old_shells & set(server.shells["AMS2"]), "the restart ended the old shells"
        again = session.run("connection_probe", {}, timeout=30)  # the old pool is refused, so
        assert again.data  # the session opened a new one
    finally:
        session.close()


# ---------------------------------------------------------------------------------------------
# Section 5: SecureStrings are not text
# ---------------------------------------------------------------------------------------------


def test_secure_string_as_text():
    """A SecureString bound to a [string] parameter becomes the type's name, not the secret."""
    text = "param([string]$User, [object]$Password)\n$ErrorActionPreference = 'Stop'\n"
    types = param_types(text)
    assert types == {"user": "string", "password": "object"}
    secret = PSSecureString("s3cret")
    params, _ = bind(("User", "Password"), [("User", secret), ("Password", secret)], types)
    assert params["User"] == SECURE_STRING_TEXT and params["Password"] == "s3cret"
    # task_run.ps1 takes both as [object] and converts them itself
    task_types = param_types(scripts.load("task_run"))
    assert task_types["taskuser"] == task_types["taskpassword"] == "object"


# ---------------------------------------------------------------------------------------------
# Section 6: Access Manager's installer and settings
# ---------------------------------------------------------------------------------------------


def test_msi_properties():
    node = state()["nodes"]["AMS1"]
    code, log = scenarios.run_installer(
        node, "2.1.1069.0", {"USER_NAME": GMSA, "CONNECTION_STRING": "Server=sql1"}
    )
    assert code == 0
    assert any("CONNECTION_STRING is not used" in line for line in log)
    assert "ConnectionString" not in node["registry"][scenarios.AMS_PARAMETERS_KEY]
    # INSTALL_SQL_EXPRESS was left at its default: the node got its own SQL Express
    assert scenarios.SQL_EXPRESS_SERVICE in node["services"]
    clean = state()["nodes"]["AMS2"]
    assert scenarios.run_installer(clean, "2.1.1069.0", PROPERTIES)[0] == 0
    assert scenarios.SQL_EXPRESS_SERVICE not in clean["services"]
    assert scenarios.run_installer(state()["nodes"]["AMS1"], "2.1.1069.0", {})[0] == 1603


def test_ams_settings_location():
    world = FakeStore(state())
    with world.transaction() as w:
        scenarios.run_installer(w["nodes"]["AMS1"], "2.0.8393.0", PROPERTIES)
        # a license written where an older script looked for it: the service never reads it
        w["nodes"]["AMS1"]["registry"][scenarios.AMS_KEY]["LicenseData"] = "LICENSE"
    seen = ams.ams_detect(FakeCtx(world, "AMS1", {}, script="ams_detect"))
    assert seen["sql_server"] == PROPERTIES["SQLSERVER"] and seen["connection_string"] is None
    assert (
        seen["license"]["present"] is None
        and "Parameters\\LicenseData" in seen["license"]["checked"]
    )
    with world.transaction() as w:
        w["nodes"]["AMS1"]["registry"][scenarios.AMS_PARAMETERS_KEY]["LicenseData"] = "LICENSE"
    seen = ams.ams_detect(FakeCtx(world, "AMS1", {}, script="ams_detect"))
    assert seen["license"] == {**seen["license"], "present": True, "source": "registry"}


HOST_CONFIG = {
    "WebAppEnabled": True,
    "ApiEnabled": True,
    "HostName": "amsweb.corp.example.test",
    "ConnectionString": "Server=sql1;Database=AccessManager;Integrated Security=true",
}
V2_ONLY = (
    "param([bool]$WebAppEnabled, [bool]$ApiEnabled, [string]$HostName, [string]$ConnectionString)\n"
    "Set-AmsHostConfig -WebAppEnabled $WebAppEnabled -ApiEnabled $ApiEnabled "
    "-ApiHostname $HostName -ConnectionString $ConnectionString -SkipConnectionStringValidation\n"
)


@pytest.mark.parametrize("version", ["2.1.1069.0", "3.0.1638.0"])
def test_host_config_by_version(version):
    world = FakeStore(state())
    with world.transaction() as w:
        scenarios.run_installer(w["nodes"]["AMS1"], version, PROPERTIES)
    vetted = FakeCtx(world, "AMS1", HOST_CONFIG, script="ams_set_host_config")
    assert ams.ams_set_host_config(vetted)["version"] == version
    old = FakeCtx(world, "AMS1", HOST_CONFIG, script="ams_set_host_config")
    old.text = V2_ONLY
    if version.startswith("3."):
        with pytest.raises(ScriptFailure, match="parameter name 'ApiEnabled'"):
            ams.ams_set_host_config(old)
    else:
        assert ams.ams_set_host_config(old)["api_enabled"] is True


# ---------------------------------------------------------------------------------------------
# Section 7: group-managed service accounts
# ---------------------------------------------------------------------------------------------


def test_gmsa_principals_replace():
    """Set-ADServiceAccount replaces the list: sending only the missing node drops the others.
    prereq_set_gmsa_principals reads the list fresh and sends all of it."""
    gmsa = {"principals_allowed": ["AMS1$", "SQL1$"]}
    prereq.set_principals(gmsa, ["AMS2$"])
    assert gmsa["principals_allowed"] == ["AMS2$"]
    world = FakeStore(state("ad_module:AMS1", "gmsa_not_allowed:AMS2"))
    world.state["domain"]["gmsas"]["svc-ams$"]["principals_allowed"].append("SQL1$")
    fix = route.as_operator(
        node_info(),
        "prereq_set_gmsa_principals",
        {"ServiceAccount": GMSA, "Add": ["AMS1$", "AMS2$"]},
        label="Fix",
    )
    result = run_action(world, fix)
    assert result.ok and result.data["principals"] == ["AMS1$", "SQL1$", "AMS2$"]


def test_kds_effective_delay():
    world = state("kds_too_new", "batch_logon_gmsa:AMS1")
    assert not scenarios.usable_kds_key(world)
    later = scenarios.parse_iso(world["domain"]["kds_root_keys"][0]["effective_time"])
    assert scenarios.usable_kds_key(world, later + timedelta(hours=10))
    action = route.as_service_account(
        node_info(),
        "prereq_sql_facts",
        GMSA,
        {"SqlServer": "sql1.corp.example.test", "Account": GMSA},
        label="SQL",
    )
    refused = run_action(FakeStore(world), action)
    assert not refused.ok and "may not retrieve" in refused.error_message
