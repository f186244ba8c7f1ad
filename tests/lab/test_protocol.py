"""The real pypsrp client against an in-process LabServer."""

import hashlib
import json
import os
import time

import pytest
import requests
from pypsrp.client import Client
from pypsrp.exceptions import AuthenticationError, WinRMError, WSManFaultError
from pypsrp.powershell import PowerShell, PSInvocationState, RunspacePool

from app.lab.dispatch import UNRECOGNISED
from app.lab.server import LabServer
from tests.conftest import wait_for
from tests.lab.conftest import NODES, PASSWORD, SCRIPTS, USER, script_text

OPERATION_TIMEOUT = 2150858793


def run(wsman, name, params=None, args=()):
    """Invoke a vetted test script on a fresh pool and return the finished PowerShell."""
    with RunspacePool(wsman) as pool:
        ps = PowerShell(pool)
        ps.add_script(script_text(name))
        for arg in args:
            ps.add_argument(arg)
        if params:
            ps.add_parameters(params)
        ps.invoke()
    return ps


def test_pool_open_and_close(lab, connect):
    pool = RunspacePool(connect())
    pool.open()
    assert pool.state == 2  # RunspacePoolState.OPENED
    assert len(lab.shells["node1"]) == 1
    pool.close()
    assert lab.shells["node1"] == {}


def test_script_with_named_parameters(connect):
    ps = run(connect(), "lab_echo", {"Name": "Ada", "Count": 2, "Shout": True})
    assert ps.state == PSInvocationState.COMPLETED
    assert not ps.had_errors
    assert json.loads(ps.output[0]) == {
        "greeting": "HELLO ADAHELLO ADA",
        "count": 2,
        "auth": "basic",
    }


def test_positional_arguments_bind_in_param_order(connect):
    ps = run(connect(), "lab_echo", args=("Grace", 3))
    assert json.loads(ps.output[0])["greeting"] == "Hello Grace" * 3


def test_reused_pool_runs_many_scripts(connect):
    with RunspacePool(connect()) as pool:
        for index in range(5):
            ps = PowerShell(pool)
            ps.add_script(script_text("lab_echo")).add_parameters({"Name": str(index)})
            assert json.loads(ps.invoke()[0])["greeting"] == f"Hello {index}"


def test_begin_invoke_then_poll_survives_operation_timeouts(connect):
    with RunspacePool(connect()) as pool:
        ps = PowerShell(pool)
        ps.add_script(script_text("lab_slow")).add_parameters({"Seconds": 2.5, "Quiet": True})
        ps.begin_invoke()
        with pytest.raises(WSManFaultError) as fault:
            for _ in range(3):  # the first Receive may carry the Running state
                pool._receive(ps.id, timeout=1)
        assert fault.value.code == OPERATION_TIMEOUT
        while ps.state == PSInvocationState.RUNNING:
            ps.poll_invoke(timeout=1)
    assert ps.state == PSInvocationState.COMPLETED
    assert json.loads(ps.output[-1]) == {"slept": 2.5}


def test_every_stream_has_display_text(connect):
    ps = run(connect(), "lab_streams", {"Message": "m1"})
    assert json.loads(ps.output[0]) == {"done": True}
    assert [str(r) for r in ps.streams.warning] == ["warning: m1"]
    assert [str(r) for r in ps.streams.verbose] == ["verbose: m1"]
    assert [r.message_data for r in ps.streams.information] == ["information: m1"]
    assert [(r.description, r.percent_complete) for r in ps.streams.progress] == [
        ("progress: m1", 40)
    ]
    assert [str(r) for r in ps.streams.error] == ["error: m1"]
    assert not ps.had_errors, "a non-terminating error leaves the pipeline Completed"


def test_failing_handler_fails_the_pipeline(connect):
    ps = run(connect(), "lab_fail", {"Reason": "disk full"})
    assert ps.had_errors
    assert ps.state == PSInvocationState.FAILED
    assert [str(e) for e in ps.streams.error] == ["lab_fail: disk full"]


def test_unrecognised_script_fails_clearly(connect):
    with RunspacePool(connect()) as pool:
        ps = PowerShell(pool)
        ps.add_script(script_text("lab_echo") + "\nRemove-Item C:\\ -Recurse")
        ps.invoke()
    assert ps.had_errors
    assert str(ps.streams.error[0]) == UNRECOGNISED


def test_vetted_script_without_model_fails(connect):
    ps = run(connect(), "lab_unmodelled")
    assert ps.had_errors
    assert str(ps.streams.error[0]) == "no lab model for script lab_unmodelled"


def test_execute_ps_wrapper_runs_a_vetted_script(lab, connect):
    client = Client(
        "127.0.0.1",
        port=lab.ports["node1"],
        username=USER,
        password=PASSWORD,
        ssl=False,
        auth="basic",
        encryption="never",
    )
    output, streams, had_errors = client.execute_ps(script_text("lab_streams"))
    assert not had_errors
    assert json.loads(output) == {"done": True}
    assert [str(w) for w in streams.warning] == ["warning: lab"]
    output, streams, had_errors = client.execute_ps("Get-Process")
    assert had_errors and str(streams.error[0]) == UNRECOGNISED


@pytest.mark.parametrize("auth", ["basic", "ntlm"])
def test_copy_then_fetch_5_mb(lab, store, tmp_path, auth):
    data = os.urandom(5 * 1024 * 1024)
    source, back = tmp_path / "payload.bin", tmp_path / "back.bin"
    source.write_bytes(data)
    client = Client(
        "127.0.0.1",
        port=lab.ports["node2"],
        username=USER,
        password=PASSWORD,
        ssl=False,
        auth=auth,
        encryption="never" if auth == "basic" else "auto",
    )
    remote = client.copy(str(source), "C:\\Temp\\payload.bin")
    assert remote == "C:\\Temp\\payload.bin"
    entry = store.read()["nodes"]["node2"]["files"][remote]
    assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["size"] == len(data)
    assert store.blob_path(entry["blob"]).read_bytes() == data
    client.fetch("c:\\temp\\PAYLOAD.bin", str(back))
    assert hashlib.sha256(back.read_bytes()).digest() == hashlib.sha256(data).digest()


def test_copy_resolves_relative_and_variable_paths(lab, store, tmp_path):
    source = tmp_path / "small.txt"
    source.write_bytes(b"hello")
    client = Client(
        "127.0.0.1",
        port=lab.ports["node1"],
        username=USER,
        password=PASSWORD,
        ssl=False,
        auth="basic",
        encryption="never",
    )
    assert client.copy(str(source), "notes.txt") == f"C:\\Users\\{USER}\\Documents\\notes.txt"
    temp = client.copy(str(source), "%TEMP%\\x.txt", expand_variables=True)
    assert temp == f"C:\\Users\\{USER}\\AppData\\Local\\Temp\\x.txt"


def test_fetch_of_missing_file_fails(lab, tmp_path):
    client = Client(
        "127.0.0.1",
        port=lab.ports["node1"],
        username=USER,
        password=PASSWORD,
        ssl=False,
        auth="basic",
        encryption="never",
    )
    with pytest.raises(WinRMError, match="does not exist"):
        client.fetch("C:\\nope.bin", str(tmp_path / "x"))


def test_stop_is_honoured(connect, probe):
    with RunspacePool(connect()) as pool:
        ps = PowerShell(pool)
        ps.add_script(script_text("lab_slow")).add_parameters({"Seconds": 30})
        ps.begin_invoke()
        assert probe.started.wait(5)
        started = time.monotonic()
        ps.stop()
        assert probe.stopped.wait(2), "the handler saw the stop request"
        assert time.monotonic() - started < 3
        assert ps.state == PSInvocationState.STOPPED


def test_ntlm_uses_message_encryption(connect):
    wsman = connect(auth="ntlm")
    ps = run(wsman, "lab_echo", {"Name": "n"})
    assert json.loads(ps.output[0])["auth"] == "ntlm"
    assert wsman.transport.encryption is not None, "bodies travelled as multipart/encrypted"


def test_negotiate_is_recorded_as_negotiate(connect, lab):
    ps = run(connect(auth="negotiate"), "lab_echo", {"Name": "n"})
    assert json.loads(ps.output[0])["auth"] == "negotiate"
    assert lab.last_auth["node1"] == "negotiate"


@pytest.mark.parametrize("auth", ["basic", "ntlm"])
def test_wrong_password_is_rejected(connect, auth):
    with pytest.raises(AuthenticationError):
        RunspacePool(connect(auth=auth, password="wrong")).open()


@pytest.mark.parametrize("auth", ["basic", "ntlm"])
def test_https_with_self_signed_certificate(store, auth):
    server = LabServer(store, NODES, 0, USER, PASSWORD, https=True, extra_scripts_dirs=[SCRIPTS])
    server.start()
    try:
        wsman = __import__("pypsrp.wsman", fromlist=["WSMan"]).WSMan(
            "127.0.0.1",
            port=server.ports["node1"],
            username=USER,
            password=PASSWORD,
            ssl=True,
            cert_validation=False,
            auth=auth,
        )
        ps = run(wsman, "lab_echo", {"Name": "tls"})
        assert json.loads(ps.output[0]) == {"greeting": "Hello tls", "count": 1, "auth": auth}
        assert server.url("node1").startswith("https://")
    finally:
        server.stop()


def test_fault_unreachable(connect, store):
    with store.transaction() as state:
        state["faults"]["unreachable"] = ["node1"]
    with pytest.raises(requests.exceptions.ConnectionError):
        RunspacePool(connect("node1")).open()
    assert not run(connect("node2"), "lab_echo", {"Name": "ok"}).had_errors
    with store.transaction() as state:
        state["faults"]["unreachable"] = []
    assert not run(connect("node1"), "lab_echo", {"Name": "ok"}).had_errors


@pytest.mark.parametrize("auth", ["basic", "ntlm"])
def test_fault_auth_failure(connect, store, auth):
    with store.transaction() as state:
        state["faults"]["auth_failure"] = ["node2"]
    with pytest.raises(AuthenticationError):
        RunspacePool(connect("node2", auth=auth)).open()


def _slow_progress(ps: PowerShell) -> bool:
    """Receive once (the node answers as soon as it has a record); True once it is working."""
    ps.poll_invoke()
    return any("slow node" in p.description for p in ps.streams.progress)


def test_fault_slow_node_emits_progress_and_honours_stop(connect, store):
    with store.transaction() as state:
        state["faults"]["slow"] = {"node1": 1.2}
    started = time.monotonic()
    ps = run(connect("node1"), "lab_echo", {"Name": "s"})
    assert time.monotonic() - started >= 1.2
    assert len([p for p in ps.streams.progress if "slow node" in p.description]) >= 2
    assert json.loads(ps.output[0])["greeting"] == "Hello s"
    with store.transaction() as state:
        state["faults"]["slow"] = {"node1": 30}
    with RunspacePool(connect("node1")) as pool:
        ps = PowerShell(pool)
        ps.add_script(script_text("lab_echo")).add_parameters({"Name": "s"})
        ps.begin_invoke()
        wait_for(lambda: _slow_progress(ps), 10, 0, "the node's first progress")  # Receive waits
        ps.stop()
        assert ps.state == PSInvocationState.STOPPED


def test_fault_crash_halfway_fires_once_without_effect(connect, store):
    with store.transaction() as state:
        state["faults"]["crash_halfway"] = {"node1": "lab_state"}
    params = {"Key": "colour", "Value": "blue"}
    ps = run(connect("node1"), "lab_state", params)
    assert ps.had_errors and "crashed halfway" in str(ps.streams.error[0])
    assert max(p.percent_complete for p in ps.streams.progress) == 50
    state = store.read()
    assert "values" not in state["nodes"]["node1"]
    assert "node1" not in state["faults"]["crash_halfway"]
    assert not run(connect("node1"), "lab_state", params).had_errors
    assert store.read()["nodes"]["node1"]["values"] == {"colour": "blue"}


def test_fault_reboot_mid_action(connect, store, lab):
    with store.transaction() as state:
        state["nodes"]["node1"]["pending_reboot"] = True
        state["faults"]["reboot_mid_action"] = {"node1": {"script": "lab_state", "seconds": 1.5}}
    with pytest.raises(requests.exceptions.ConnectionError):
        run(connect("node1"), "lab_state", {"Key": "k", "Value": "v"})
    with pytest.raises(requests.exceptions.ConnectionError):
        RunspacePool(connect("node1")).open()

    def back() -> bool:
        return not lab.is_down("node1") and not store.read()["nodes"]["node1"]["pending_reboot"]

    wait_for(back, 10, 0.05, "node1 to come back from its reboot")
    state = store.read()
    assert state["nodes"]["node1"]["pending_reboot"] is False
    assert state["nodes"]["node1"]["values"] == {"k": "v"}, "the action's effect was applied"
    assert "node1" not in state["faults"]["reboot_mid_action"]
    assert not run(connect("node1"), "lab_state", {"Key": "k", "Value": "v2"}).had_errors
