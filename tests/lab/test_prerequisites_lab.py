"""Prerequisites end to end: real pypsrp runner -> LabServer -> vetted scripts -> models."""

import pytest

from app.guides.cluster.prerequisites import STEP
from app.lab import scenarios
from app.lab.server import LabServer
from app.lab.store import LabStore
from app.remote.errors import RemoteError
from app.remote.runner import Connection, run_script
from app.steps import ActionResult, Finish, NodeInfo, RunOptions, RunView
from tests.lab.conftest import PASSWORD, USER

NODES = ["AMS1", "AMS2"]


@pytest.fixture
def world(tmp_path):
    """A LabStore holding the default scenario and a server for its nodes."""
    store = LabStore(tmp_path / "lab" / "state.json")
    store.replace(scenarios.default_state(NODES))
    server = LabServer(store, NODES, 0, USER, PASSWORD).start()
    yield store, server
    server.stop()


def execute(server: LabServer, action) -> ActionResult:
    conn = Connection(
        "127.0.0.1",
        port=server.ports[action.node],
        auth="ntlm",
        username=USER,
        password=PASSWORD,
        connection_timeout=3,
        read_timeout=10,
    )
    try:
        vault = {"winrm_username": USER, "winrm_password": PASSWORD}
        secure = {param: vault[entry] for param, entry in action.secrets.items()}
        result = run_script(conn, action.script, action.params, timeout=30, secure_params=secure)
    except RemoteError as error:
        return ActionResult(
            action.node, action.script, "failed", None, error.category, error.message
        )
    return ActionResult(action.node, action.script, "succeeded", result.data)


def drive(store: LabStore, server: LabServer, options=None) -> Finish:
    hints = store.read()["suggested_inputs"]
    inputs = {k: hints[k] for k in ("ams_version", "gmsa", "sql_connection_string")}
    nodes = tuple(NodeInfo(n, "127.0.0.1", i, "ntlm") for i, n in enumerate(NODES))
    results: dict = {}
    for _ in range(10):
        view = RunView(
            "lab",
            "corp.example.test",
            nodes,
            inputs,
            {},
            frozenset({"license_key"}),
            results,
            RunOptions(**(options or {})),
        )
        outcome = STEP.advance(view)
        if isinstance(outcome, Finish):
            return outcome
        results[outcome.name] = {a.node: execute(server, a) for a in outcome.actions}
    raise AssertionError("the step did not finish")


def test_windows_as_shipped_over_winrm(world):
    """The strict default: no AD module, no second hop. The step offers the module, installs
    it with consent, and then reads the domain through a scheduled task."""
    store, server = world
    finish = drive(store, server)
    module = next(c for c in finish.checks if c.key == "ad_module")
    assert finish.status == "needs_attention" and module.status == "fail"
    finish = drive(store, server, {"fix": module.fix["id"]})
    assert finish.status == "done", finish.summary
    found = {c.key: c.status for c in finish.checks}
    assert found["kds"] == found["gmsa_principals"] == found["sql_login"] == "pass"


def test_faults_over_winrm(world):
    store, server = world
    with store.transaction() as state:
        for spec in ("unreachable:AMS2", "kds_too_new", "sql_express", "ad_module:AMS1"):
            scenarios.apply_fault(state, spec)
    finish = drive(store, server)
    found = {c.key: c for c in finish.checks}
    assert finish.status == "needs_attention"
    assert found["winrm:AMS2"].status == "fail"
    assert found["winrm:AMS2"].evidence.startswith("unreachable")
    assert found["kds"].status == "fail"
    assert found["sql_edition"].status == "fail"
    assert finish.failed_nodes == ("AMS2",)
