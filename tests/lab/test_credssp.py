"""CredSSP, the real handshake: pypsrp's client (requests-credssp) against the lab's acceptor.

The lab offers CredSSP only on a node whose WinRM service enables it (rule credssp_server); the
session it gives is "credssp" only after the client delegated a password the node accepts."""

import json

import pytest
from pypsrp.powershell import PowerShell, RunspacePool
from requests_credssp.exceptions import AuthenticationException, NTStatusException

from app.lab import scenarios
from app.lab.server import LabServer
from app.lab.store import LabStore
from app.remote import errors
from app.remote.runner import Connection, run_script
from tests.lab.conftest import PASSWORD, USER, script_text


def enable_credssp(store, *nodes):
    """What `Enable-WSManCredSSP -Role Server` does on each node."""
    with store.transaction() as state:
        for node in nodes:
            state["nodes"][node].setdefault("winrm", {})["credssp"] = True


def echo(wsman, name="n", size=0):
    with RunspacePool(wsman) as pool:
        ps = PowerShell(pool)
        ps.add_script(script_text("lab_echo")).add_parameters({"Name": name + "x" * size})
        return json.loads(ps.invoke()[0])


def test_credssp_session_is_credssp_and_encrypted(connect, lab, store):
    enable_credssp(store, "node1")
    wsman = connect(auth="credssp")
    assert echo(wsman)["auth"] == "credssp"
    assert lab.last_auth["node1"] == "credssp"
    assert wsman.transport.encryption.protocol == "application/HTTP-CredSSP-session-encrypted"


def test_credssp_large_bodies_travel_in_16k_records(connect, store):
    """Above 16 KiB WinRM splits CredSSP bodies (multipart/x-multi-encrypted); both ways work."""
    enable_credssp(store, "node1")
    greeting = echo(connect(auth="credssp"), "big", size=40_000)["greeting"]
    assert greeting == "Hello big" + "x" * 40_000


def test_node_without_credssp_does_not_offer_it(connect, store):
    """Windows ships with Auth/CredSSP off: the 401 lists no CredSSP, and the client stops with a
    message the product turns into what to do on the node."""
    with pytest.raises(AuthenticationException, match="CredSSP") as refused:
        RunspacePool(connect(auth="credssp")).open()
    classified = errors.classify(refused.value, host="node1")
    assert classified.category == errors.AUTH_FAILED
    assert "Enable-WSManCredSSP -Role Server" in classified.remediation
    assert echo(connect(auth="ntlm"))["auth"] == "ntlm"  # the other methods still work


def test_credssp_wrong_password_is_refused(connect, store):
    """The acceptor answers the bad NTLM inside the TLS with an error status, as Windows does."""
    enable_credssp(store, "node1")
    with pytest.raises(NTStatusException) as refused:
        RunspacePool(connect(auth="credssp", password="wrong")).open()
    classified = errors.classify(refused.value, host="node1")
    assert classified.category == errors.AUTH_FAILED
    assert "wrong user name or password" in classified.message


def test_credssp_only_where_enabled(connect, store):
    enable_credssp(store, "node2")
    assert echo(connect("node2", auth="credssp"))["auth"] == "credssp"
    with pytest.raises(AuthenticationException):
        RunspacePool(connect("node1", auth="credssp")).open()


def test_basic_and_ntlm_sessions_are_never_credssp(connect, store):
    """No user list turns a session into CredSSP any more: only the handshake does."""
    enable_credssp(store, "node1")
    with store.transaction() as state:
        state["auth"] = {"credssp_users": [USER]}  # the old stand-in, now ignored
    assert echo(connect(auth="basic"))["auth"] == "basic"
    assert echo(connect(auth="ntlm"))["auth"] == "ntlm"
    assert echo(connect(auth="credssp", password=PASSWORD))["auth"] == "credssp"


def test_credssp_session_makes_the_second_hop(tmp_path):
    """The product's runner over real CredSSP reaches the domain directly from the node, where the
    same script over NTLM gets the error Windows gives (rule second_hop)."""
    world = scenarios.default_state(["AMS1", "AMS2"])
    for spec in ("ad_module:AMS1", "credssp:AMS1"):
        scenarios.apply_fault(world, spec)
    store = LabStore(tmp_path / "lab" / "state.json")
    store.replace(world)
    server = LabServer(store, ["AMS1", "AMS2"], 0, USER, PASSWORD).start()
    try:
        params = {"ServiceAccount": "CORP\\svc-ams$", "Domain": "corp.example.test"}

        def facts(auth):
            conn = Connection(
                "127.0.0.1",
                port=server.ports["AMS1"],
                auth=auth,
                username=USER,
                password=PASSWORD,
                connection_timeout=3,
                read_timeout=10,
            )
            return run_script(conn, "prereq_domain_facts", params, timeout=30).data

        plain = facts("ntlm")
        assert "Unable to contact the server" in plain["errors"]["kds"]
        delegated = facts("credssp")
        assert delegated["errors"] == {} and delegated["kds_root_keys"]
        assert server.last_auth["AMS1"] == "credssp"
    finally:
        server.stop()
