"""WinRM protocol rules (windows-rules.md section 4): a client that breaks one fails as on Windows.

Each rule is driven with the real pypsrp client against an in-process LabServer; a raw SOAP POST is
used where the exact fault envelope must be inspected or pypsrp cannot produce the case. The
translations of the resulting faults into operator messages (app/remote/errors.py) are checked at
the end of the module.
"""

import time
import uuid
import xml.etree.ElementTree as ET

import pytest
import requests
from pypsrp.exceptions import WinRMTransportError, WSManFaultError
from pypsrp.powershell import PowerShell, PSInvocationState, RunspacePool
from pypsrp.shell import CommandState
from pypsrp.wsman import SelectorSet, WSMan

from app.lab import rules, wsman
from app.lab.dispatch import UNRECOGNISED
from app.lab.server import LabServer
from app.remote import errors
from tests.lab.conftest import NODES, PASSWORD, SCRIPTS, USER, script_text

POWERSHELL = "http://schemas.microsoft.com/powershell/Microsoft.PowerShell"
SHELL_ACTION = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/"
NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "f": "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault",
}


@pytest.fixture
def make_lab(store):
    """Start a LabServer with some WinRM limits lowered (the rest stay Windows' defaults)."""
    started = []

    def make(**limits) -> LabServer:
        server = LabServer(store, NODES, 0, USER, PASSWORD, extra_scripts_dirs=[SCRIPTS], **limits)
        started.append(server.start())
        return server

    yield make
    for server in started:
        server.stop()


def client(server: LabServer, node: str = "node1", **kwargs) -> WSMan:
    """The pypsrp transport for a node, Basic over HTTP like the protocol tests."""
    return WSMan(
        "127.0.0.1",
        port=server.ports[node],
        username=USER,
        password=PASSWORD,
        ssl=False,
        auth="basic",
        encryption="never",
        connection_timeout=5,
        **kwargs,
    )


def soap(action: str, body: str = "", shell_id: str | None = None, timeout: str = "PT5S") -> bytes:
    """A minimal WS-Management request envelope, for cases inspected byte by byte."""
    selectors = (
        f'<w:SelectorSet><w:Selector Name="ShellId">{shell_id}</w:Selector></w:SelectorSet>'
        if shell_id
        else ""
    )
    return (
        '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"'
        ' xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing"'
        ' xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"'
        ' xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell">'
        f"<s:Header><a:Action>{action}</a:Action>"
        f"<a:MessageID>uuid:{uuid.uuid4()}</a:MessageID>"
        f"<w:ResourceURI>{POWERSHELL}</w:ResourceURI>"
        f"<w:MaxEnvelopeSize>512000</w:MaxEnvelopeSize>"
        f"<w:OperationTimeout>{timeout}</w:OperationTimeout>{selectors}</s:Header>"
        f"<s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def post(server: LabServer, data: bytes, node: str = "node1") -> requests.Response:
    return requests.post(
        server.url(node),
        data=data,
        auth=(USER, PASSWORD),
        headers={"Content-Type": "application/soap+xml;charset=UTF-8"},
        timeout=10,
    )


def fault_parts(response: requests.Response) -> dict:
    """The parts of a SOAP Fault Windows' recordings are compared on."""
    root = ET.fromstring(response.content)  # noqa: S314 - the lab's own answer on loopback
    fault = root.find("s:Body/s:Fault", NS)
    detail = fault.find("s:Detail/w:FaultDetail", NS)
    return {
        "status": response.status_code,
        "value": fault.findtext("s:Code/s:Value", namespaces=NS),
        "subcode": fault.findtext("s:Code/s:Subcode/s:Value", namespaces=NS),
        "detail": detail.text if detail is not None else None,
        "code": int(fault.find("s:Detail/f:WSManFault", NS).attrib["Code"]),
        "reason": fault.findtext("s:Reason/s:Text", namespaces=NS),
    }


def start_slow(pool: RunspacePool, seconds: float, quiet: bool = True) -> PowerShell:
    ps = PowerShell(pool)
    ps.add_script(script_text("lab_slow")).add_parameters({"Seconds": seconds, "Quiet": quiet})
    ps.begin_invoke()
    return ps


# --- unknown_selectors ---------------------------------------------------------------------------


def test_unknown_shell_id(lab, connect):
    """A shell the node no longer has (deleted by another client here): s:Sender/InvalidSelectors."""
    pool = RunspacePool(connect())
    pool.open()
    other = connect()
    selectors = SelectorSet()
    selectors.add_option("ShellId", pool.shell.id)
    other.delete(POWERSHELL, selector_set=selectors)

    assert pool.is_alive() is False  # the Get fault with code 0x8033805B means "gone" to pypsrp
    ps = PowerShell(pool)
    ps.add_script(script_text("lab_echo")).add_parameters({"Name": "x"})
    with pytest.raises(WSManFaultError) as fault:
        ps.invoke()
    assert fault.value.code == wsman.UNEXPECTED_SELECTORS
    assert "shell was not found on the server" in fault.value.reason

    parts = fault_parts(post(lab, soap(SHELL_ACTION + "Receive", shell_id=pool.shell.id)))
    assert parts == {
        "status": 500,
        "value": "s:Sender",
        "subcode": "w:InvalidSelectors",
        "detail": wsman.UNEXPECTED_SELECTORS_DETAIL,
        "code": 2150858843,
        "reason": "The WS-Management service cannot process the request because the request "
        "contained invalid selectors for the resource. ",
    }


def test_unknown_command_id(lab, connect):
    """Receive for a CommandId the shell does not know (test_psrp_receive_failure.yml)."""
    with RunspacePool(connect()) as pool:
        with pytest.raises(WSManFaultError) as fault:
            pool.shell.receive("stdout", command_id=str(uuid.uuid4()).upper(), timeout=2)
        assert fault.value.code == 2150858843
        assert "command identifier that does not exist" in fault.value.reason

        body = f'<rsp:Receive><rsp:DesiredStream CommandId="{uuid.uuid4()}">stdout</rsp:DesiredStream></rsp:Receive>'
        parts = fault_parts(post(lab, soap(SHELL_ACTION + "Receive", body, pool.shell.id)))
        assert (parts["value"], parts["subcode"], parts["detail"], parts["code"]) == (
            "s:Sender",
            "w:InvalidSelectors",
            wsman.UNEXPECTED_SELECTORS_DETAIL,
            2150858843,
        )


# --- max_timeout ---------------------------------------------------------------------------------


def test_operation_timeout_above_max_timeout_is_capped(make_lab):
    """MS-WSMV 3.1.4.1.6: the node serves a longer OperationTimeout as MaxTimeoutms, then TimedOut."""
    assert LabServer.__init__.__kwdefaults__["max_timeout_ms"] == 60_000
    server = make_lab(max_timeout_ms=1000)
    with RunspacePool(client(server)) as pool:
        ps = start_slow(pool, 2.5)
        started = time.monotonic()
        with pytest.raises(WSManFaultError) as fault:
            for _ in range(3):  # the first Receive may still carry the pipeline's first output
                pool._receive(ps.id, timeout=30)
        assert fault.value.code == wsman.OPERATION_TIMEOUT
        assert time.monotonic() - started < 5, "the node waited for the client's 30 s"
        while ps.state == PSInvocationState.RUNNING:
            ps.poll_invoke(timeout=30)
        assert ps.state == PSInvocationState.COMPLETED


def test_invalid_operation_timeout_is_refused(lab, connect):
    """A negative OperationTimeout: the recorded a:InvalidMessageInformationHeader fault."""
    with RunspacePool(connect()) as pool, pytest.raises(WSManFaultError) as fault:
        pool.shell.receive("stdout", timeout=-1)
    assert fault.value.code == 2150858767
    assert "invalid timeout field in the SOAP header: PT-1S" in fault.value.reason
    parts = fault_parts(post(lab, soap(SHELL_ACTION + "Receive", timeout="PT-1S")))
    assert (parts["value"], parts["subcode"]) == ("s:Sender", "a:InvalidMessageInformationHeader")


# --- max_envelope --------------------------------------------------------------------------------


def test_envelope_above_max_envelope_size_is_refused(lab):
    """A request above MaxEnvelopeSizekb (500 KiB) gets HTTP 413 and no SOAP body."""
    padding = "x" * (lab.max_envelope_kb * 1024)
    too_big = post(lab, soap(SHELL_ACTION + "Receive", f"<!-- {padding} -->"))
    assert (too_big.status_code, too_big.content) == (413, b"")
    at_limit = soap(SHELL_ACTION + "Receive")
    at_limit = at_limit.replace(
        b"<s:Body>", b"<s:Body><!--" + b"x" * (512000 - len(at_limit) - 7) + b"-->"
    )
    assert len(at_limit) == 512000
    assert post(lab, at_limit).status_code == 500  # judged on its content (unknown shell), not size


def test_pypsrp_with_a_larger_envelope_than_the_node_allows(lab, connect):
    """pypsrp told the node accepts 2 MB sends ~1 MB fragments: the node answers 413."""
    big_script = "# " + "a" * 900_000
    wide = connect(max_envelope_size=2_000_000)
    with RunspacePool(wide) as pool:
        wide.max_envelope_size = 2_000_000  # pypsrp lowers it to 512000 while opening the pool
        wide.max_payload_size = wide._calc_envelope_size(2_000_000)
        pool._fragmenter.max_size = wide.max_payload_size
        ps = PowerShell(pool)
        ps.add_script(big_script)
        with pytest.raises(WinRMTransportError) as refused:
            ps.invoke()
        assert refused.value.code == 413
    with RunspacePool(connect()) as pool:  # the default (500 KiB) fragments reach the node
        ps = PowerShell(pool)
        ps.add_script(big_script)
        ps.invoke()
        assert ps.had_errors and str(ps.streams.error[0]) == UNRECOGNISED


# --- shell_quota ---------------------------------------------------------------------------------


def test_31st_shell_of_a_user_is_refused(lab, connect):
    """MaxShellsPerUser 30: the 31st Create of the same user fails; closing one makes room."""
    pools = []
    try:
        for _ in range(30):
            pools.append(RunspacePool(connect()))
            pools[-1].open()
        extra = RunspacePool(connect())
        with pytest.raises(WSManFaultError) as fault:
            extra.open()
        assert fault.value.code == wsman.QUOTA_MAX_SHELLS == 2150859173
        assert "This user is allowed a maximum number of 30 concurrent shells" in fault.value.reason
        assert len(lab.shells["node1"]) == 30
        assert len(lab.shells["node2"]) == 0  # the quota is per node
        pools.pop().close()
        retry = RunspacePool(connect())
        retry.open()
        pools.append(retry)
    finally:
        for pool in pools:
            pool.close()


def test_shell_quota_fault_shape(make_lab):
    server = make_lab(max_shells_per_user=1)
    with RunspacePool(client(server)):
        response = post(
            server, soap("http://schemas.xmlsoap.org/ws/2004/09/transfer/Create", "<rsp:Shell/>")
        )
        parts = fault_parts(response)
    assert (parts["status"], parts["value"], parts["subcode"], parts["code"]) == (
        500,
        "s:Sender",
        "w:QuotaLimit",
        2150859173,
    )
    assert parts["reason"].startswith(
        "The WS-Management service cannot process the request. This user is allowed a maximum "
        "number of 1 concurrent shells, which has been exceeded."
    )


# --- idle_timeout --------------------------------------------------------------------------------


def test_idle_shell_is_deleted(make_lab):
    """A shell unused for longer than IdleTimeout is gone: is_alive is False, a command fails."""
    assert LabServer.__init__.__kwdefaults__["idle_timeout_ms"] == 7_200_000
    server = make_lab(idle_timeout_ms=400, max_shells_per_user=1)
    pool = RunspacePool(client(server))
    pool.open()
    time.sleep(0.8)  # the point: unused for longer than its IdleTimeout (0.4 s)
    assert pool.is_alive() is False
    ps = PowerShell(pool)
    ps.add_script(script_text("lab_echo")).add_parameters({"Name": "late"})
    with pytest.raises(WSManFaultError) as fault:
        ps.invoke()
    assert fault.value.code == wsman.UNEXPECTED_SELECTORS
    with RunspacePool(client(server)):  # an expired shell no longer counts against the quota
        pass


def test_shell_waiting_on_a_receive_is_not_idle(make_lab):
    server = make_lab(idle_timeout_ms=400)
    with RunspacePool(client(server)) as pool:
        ps = PowerShell(pool)
        ps.add_script(script_text("lab_slow")).add_parameters({"Seconds": 1.2, "Quiet": True})
        ps.invoke()  # one Receive waits 1.2 s > IdleTimeout; the shell is busy, not idle
        assert ps.state == PSInvocationState.COMPLETED
        assert pool.is_alive()


def test_idle_timeout_the_client_asks_for(make_lab):
    """Create's rsp:IdleTimeOut is honoured and reported (PT60S -> PT60.000S in the recordings)."""
    server = make_lab()
    with RunspacePool(client(server), idle_timeout=1) as pool:
        assert pool.shell.idle_time_out == "PT1.000S"
        time.sleep(1.5)  # the point: unused for longer than the 1 s it asked for
        assert pool.is_alive() is False
    with RunspacePool(client(server)) as pool:
        assert pool.shell.idle_time_out == "PT7200.000S"


# --- receive_running -----------------------------------------------------------------------------


def test_receive_reports_running_until_done(lab, connect):
    """While the pipeline runs: CommandState Running, no ExitCode; at the end Done with 0."""
    with RunspacePool(connect()) as pool:
        ps = start_slow(pool, 1.5, quiet=False)  # progress records about twice a second
        seen = []
        for _ in range(40):
            try:
                state, rc, _ = pool.shell.receive("stdout", command_id=ps._command_id, timeout=2)
            except WSManFaultError as fault:
                assert fault.code == wsman.OPERATION_TIMEOUT
                continue
            seen.append((state, rc))
            if state == CommandState.DONE:
                break
        assert (CommandState.RUNNING, None) in seen
        assert seen[-1] == (CommandState.DONE, 0)
        assert all(s == CommandState.RUNNING and r is None for s, r in seen[:-1])


def test_receive_while_slow_times_out_and_client_receives_again(lab, connect):
    with RunspacePool(connect()) as pool:
        ps = start_slow(pool, 2)
        with pytest.raises(WSManFaultError) as fault:
            for _ in range(3):
                pool._receive(ps.id, timeout=1)
        assert fault.value.code == 2150858793
        assert errors.classify(fault.value).category == errors.TIMEOUT
        parts = fault_parts(
            post(
                lab,
                soap(
                    SHELL_ACTION + "Receive",
                    f'<rsp:Receive><rsp:DesiredStream CommandId="{ps._command_id}">stdout'
                    "</rsp:DesiredStream></rsp:Receive>",
                    pool.shell.id,
                    timeout="PT0.5S",
                ),
            )
        )
        assert (parts["value"], parts["subcode"], parts["code"]) == (
            "s:Receiver",
            "w:TimedOut",
            2150858793,
        )
        while ps.state == PSInvocationState.RUNNING:
            ps.poll_invoke(timeout=1)
        assert ps.state == PSInvocationState.COMPLETED


# --- operator messages (app/remote/errors.py) ----------------------------------------------------


def test_shell_quota_is_explained(make_lab):
    server = make_lab(max_shells_per_user=1)
    with RunspacePool(client(server)), pytest.raises(WSManFaultError) as fault:
        RunspacePool(client(server)).open()
    err = errors.classify(fault.value, host="AMS1")
    assert err.category == errors.WINRM_LIMIT and not err.transient
    assert "too many parallel sessions for this user" in err.message
    assert "(AMS1)" in err.message
    assert "MaxShellsPerUser" in err.remediation and "Close the other sessions" in err.remediation


def test_plugin_shell_quota_and_operation_quota_are_explained():
    plugin = WSManFaultError(2150859236, "m", "This user has exceeded ...", None, None, None)
    assert errors.classify(plugin).remediation == errors.SHELL_QUOTA_REMEDIATION
    operations = WSManFaultError(2150859174, "m", "maximum number of 1500 ...", None, None, None)
    err = errors.classify(operations)
    assert err.category == errors.WINRM_LIMIT
    assert "MaxConcurrentOperationsPerUser" in err.remediation


def test_lost_shell_and_lost_command_are_explained(lab, connect):
    pool = RunspacePool(connect())
    pool.open()
    with pytest.raises(WSManFaultError) as command:
        pool.shell.receive("stdout", command_id=str(uuid.uuid4()).upper(), timeout=2)
    selectors = SelectorSet()
    selectors.add_option("ShellId", pool.shell.id)
    connect().delete(POWERSHELL, selector_set=selectors)  # the shell is gone from the node
    with pytest.raises(WSManFaultError) as shell:
        pool.shell.receive("stdout", timeout=2)
    lost_command = errors.classify(command.value)
    lost_shell = errors.classify(shell.value)
    assert lost_command.category == lost_shell.category == errors.INTERRUPTED
    assert "command" in lost_command.message and "session" in lost_shell.message
    assert "IdleTimeout" in lost_shell.remediation


def test_oversized_request_is_explained():
    err = errors.classify(WinRMTransportError("http", 413, ""), host="AMS1")
    assert err.category == errors.WINRM_LIMIT
    assert "HTTP 413" in err.message and "MaxEnvelopeSizekb" in err.remediation


def test_invalid_timeout_is_explained(lab, connect):
    with RunspacePool(connect()) as pool, pytest.raises(WSManFaultError) as fault:
        pool.shell.receive("stdout", timeout=-1)
    err = errors.classify(fault.value)
    assert err.category == errors.WINRM_LIMIT and "MaxTimeoutms" in err.remediation


def test_every_winrm_rule_is_listed_with_an_existing_test():
    names = ["unknown_selectors", "max_timeout", "max_envelope", "shell_quota", "idle_timeout"]
    for name in [*names, "receive_running"]:
        rule = rules.by_name(name)
        path, function = rule.test.split("::")
        assert rule.section == "4" and path == "tests/lab/test_winrm_rules.py"
        assert callable(globals()[function]), rule.test
