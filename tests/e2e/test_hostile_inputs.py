"""Hostile values reach the lab as literal parameter values, never as script text.

Each value is the most hostile one its validator accepts: quotes, `;`, `$(...)`, backticks, `%VAR%`
and format braces in free text (installer file name, cloud witness account), in the database name
and an extra keyword of the SQL connection string, in the operator's WinRM password (handed to the
scheduled task) and in the cloud witness access key (a vault secret). The lab records what its
handlers received (the test-only `lab_calls` hook) and the test compares it for exact equality.
The lab world is prepared so that these names exist, so every step still succeeds.
"""

import hashlib
from pathlib import Path

import pytest

from app.extensions import db
from app.models import Event, NodeAction
from tests.execution.harness import LAB_USER
from tests.lab_world import (
    configure_by_hand,
    confirm_license,
    decide,
    failing_checks,
    inputs_for,
    new_deployment,
    outcome_text,
    run_prerequisites,
    save_all_inputs,
    start,
    start_world,
)

pytestmark = pytest.mark.slow
NODES = ["AMS1", "AMS2"]
PASSWORD = "Pa'ss;$(Stop-Computer -Force)`\"%PATH%{0}"
DATABASE = "Access'Manager $(Remove-Item C:\\ -Recurse) `whoami` {0}"
CONNECTION = (
    f"Server=sql1.corp.example.test;Database={DATABASE};Integrated Security=true;"
    "Application Name=O'Brien $(Get-Date) `n %TEMP% & | <x>"
)
INSTALLER = "it's; $(Stop-Computer) `whoami` & %PATH% {0}.exe"
# Azure's rule (3-24 lowercase letters and digits) leaves nothing hostile in the account name;
# the access key next to it still is.
ACCOUNT = "amsw1tness0"
ACCESS_KEY = "k'e;y$(Stop-Computer)`\"%PATH%{0}=="


@pytest.fixture
def quick_installer(monkeypatch):
    from app.lab.handlers import ams

    monkeypatch.setattr(ams, "INSTALL_POLLS", 1)


def _prepare_world(store) -> None:
    """The database, its login and the installer file name exist under the hostile names."""
    with store.transaction() as state:
        sql = state["sql"]
        sql["databases"][DATABASE] = sql["databases"].pop("AccessManager")
        for login in sql["logins"].values():
            roles = login.get("roles", {})
            if "AccessManager" in roles:
                roles[DATABASE] = roles.pop("AccessManager")
            if login.get("default_db") == "AccessManager":
                login["default_db"] = DATABASE
        state["installers"]["2.1.1069.0"]["file_name"] = INSTALLER
        state["suggested_inputs"]["sql_connection_string"] = CONNECTION


def test_hostile_values_arrive_literally(tmp_path, e2e, lab_calls, quick_installer):
    folder = Path(e2e.config["INSTANCE_DIR"]) / "installers"
    folder.mkdir(parents=True, exist_ok=True)
    content = b"MZ hostile-name installer for the lab\n" * 512
    (folder / INSTALLER).write_bytes(content)
    store, server = start_world(tmp_path, NODES, password=PASSWORD)
    try:
        _prepare_world(store)
        deployment_id = new_deployment(server, store, name="Hostile", password=PASSWORD)
        inputs = inputs_for(store, "unattended", INSTALLER)
        inputs["prerequisites"]["sql_connection_string"] = CONNECTION
        inputs["quorum"] = {
            "witness_type": "cloud",
            "cloud_account": ACCOUNT,
            "cloud_access_key": ACCESS_KEY,
        }
        save_all_inputs(deployment_id, inputs)
        run_prerequisites(deployment_id)
        for step in ("base_cluster", "quorum"):
            run = start(deployment_id, step)
            assert run.status == "succeeded", (step, outcome_text(run))
        first = start(deployment_id, "install_ams")
        assert {c["key"].split(":")[0] for c in failing_checks(first)} >= {"configured"}
        configure_by_hand(store)
        confirm_license(deployment_id, store, "unattended", INSTALLER)
        done = decide(deployment_id, "install_ams")
        assert done.status == "succeeded", outcome_text(done)
    finally:
        server.stop()

    for node in NODES:
        facts = lab_calls.of("prereq_node_facts", node)[-1]  # the attempt after the AD module fix
        assert facts.params == {"SqlHost": "sql1.corp.example.test", "SqlPort": 1433}
    # The SQL check runs in a task on every node, as the service account, with the hostile
    # database name as a parameter.
    for call in lab_calls.of("prereq_sql_facts"):
        assert call.params["Database"] == DATABASE and call.params["SqlServer"]
    [create] = [c for c in lab_calls.of("task_run") if c.params["ScriptName"] == "cluster_create"]
    assert create.params["TaskUser"] == LAB_USER
    assert create.params["TaskPassword"] == PASSWORD  # a SecureString, decrypted by the node
    assert create.params["Parameters"]["Name"] == lab_calls.of("cluster_create")[0].params["Name"]
    [witness] = lab_calls.of("quorum_set")
    assert witness.params == {
        "WitnessType": "cloud",
        "AccountName": ACCOUNT,
        "AccessKey": ACCESS_KEY,
    }
    target = "C:\\Windows\\Temp\\" + INSTALLER
    state = store.read()
    assert state["cluster"]["quorum"]["witness"]["account"] == ACCOUNT
    for node in NODES:
        [started] = lab_calls.of("ams_install_start", node)
        assert started.params["InstallerPath"] == target
        assert started.params["LogPath"] == (
            "C:\\Windows\\Temp\\LithnetAccessManagerService-2.1.1069.0.log"
        )
        properties = started.params["Properties"]
        assert properties["USER_NAME"] == "CORP\\svc-ams$"
        assert properties["INSTALL_SQL_EXPRESS"] == "0"
        copied = state["nodes"][node]["files"][target]
        assert copied["sha256"] == hashlib.sha256(content).hexdigest()
        parameters = state["nodes"][node]["registry"][
            "HKLM\\SOFTWARE\\Lithnet\\Access Manager Service\\Parameters"
        ]
        assert parameters["ConnectionString"] == CONNECTION

    # Stored literally too, and the secrets never stored or published at all.
    rows = db.session.scalars(db.select(NodeAction)).all()
    starts = [a for a in rows if a.script == "ams_install_start"]
    assert {a.parameters["InstallerPath"] for a in starts} == {target}
    assert {a.upload["source"] for a in starts} == {INSTALLER}
    everything = str([(a.parameters, a.result, a.error_message) for a in rows])
    events = str([e.payload for e in db.session.scalars(db.select(Event)).all()])
    for secret in (PASSWORD, ACCESS_KEY):
        assert secret not in everything and secret not in events
    sql_rows = [
        a
        for a in rows
        if a.script == "task_run" and a.parameters.get("ScriptName") == "prereq_sql_facts"
    ]
    assert sql_rows and {a.parameters["Parameters"]["Database"] for a in sql_rows} == {DATABASE}
