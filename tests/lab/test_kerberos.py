"""Kerberos from a wizard host outside the domain, against a real MIT KDC (tests/kdc.py) and the
lab's GSSAPI acceptor (rule kerberos_server): the product's runner obtains a ticket with the
typed password, asks for HTTP/<node FQDN>, keeps nothing where another deployment can read it,
and translates each Kerberos failure into what to do."""

import glob
import os
import threading

import krb5
import pytest

from app.execution.worker.sessions import connection_for
from app.lab import scenarios
from app.lab.server import LabServer
from app.lab.store import LabStore
from app.models import Deployment, Node
from app.remote import errors, kerberos
from app.remote.runner import Connection, RemoteError, run_script
from app.remote.sessions import SessionCache
from tests.kdc import LAB_REALM, free_port, lab_realm

NODES = ["AMS1", "AMS2"]
USERS = {"labadmin": "Lab-Passw0rd!", "alice": "Alice-Passw0rd!", "bob": "Bob-Passw0rd!"}


@pytest.fixture(scope="module")
def realm(tmp_path_factory):
    started = lab_realm(tmp_path_factory.mktemp("kdc"), USERS)
    yield started
    started.stop()


@pytest.fixture
def lab(tmp_path, realm):
    store = LabStore(tmp_path / "lab" / "state.json")
    store.replace(scenarios.default_state(NODES))
    server = LabServer(store, NODES, 0, "labadmin", USERS["labadmin"], keytab=realm.keytab).start()
    yield server
    server.stop()


def conn(lab, realm, node="AMS1", **overrides) -> Connection:
    values = {
        "host": "127.0.0.1",
        "port": lab.ports[node],
        "auth": "kerberos",
        "username": "labadmin@corp.example.test",
        "password": USERS["labadmin"],
        "realm": LAB_REALM,
        "kdcs": (realm.kdc,),
        "spn_host": f"{node.lower()}.corp.example.test",
        "connection_timeout": 3,
        "read_timeout": 10,
    }
    return Connection(**(values | overrides))


def probe(connection: Connection) -> dict:
    return run_script(connection, "connection_probe", {}, timeout=20).data


def refused(connection: Connection) -> RemoteError:
    with pytest.raises(RemoteError) as failure:
        probe(connection)
    return failure.value


@pytest.mark.parametrize("username", ["labadmin@corp.example.test", "CORP\\labadmin", "labadmin"])
def test_every_user_name_form_gets_a_ticket_and_the_node_sees_kerberos(lab, realm, username):
    data = probe(conn(lab, realm, username=username))
    assert data["user"] == "labadmin@CORP.EXAMPLE.TEST"
    assert lab.last_auth["AMS1"] == "kerberos"


def test_ticket_for_another_node_is_refused(lab, realm):
    """Rule kerberos_server: AMS1 holds only its own key; a ticket for AMS2 does not decrypt."""
    failure = refused(conn(lab, realm, spn_host="ams2.corp.example.test"))
    assert failure.category == errors.AUTH_FAILED


def test_node_without_a_keytab_refuses_kerberos(tmp_path, realm):
    store = LabStore(tmp_path / "state.json")
    store.replace(scenarios.default_state(NODES))
    server = LabServer(store, NODES, 0, "labadmin", USERS["labadmin"]).start()
    try:
        assert refused(conn(server, realm)).category == errors.AUTH_FAILED
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("overrides", "category", "message"),
    [
        ({"password": "wrong"}, errors.AUTH_FAILED, "wrong password"),
        ({"username": "ghost"}, errors.AUTH_FAILED, "does not know this user"),
        ({"spn_host": "ams9.corp.example.test"}, errors.AUTH_FAILED, "no service principal"),
        (
            {"kdcs": (f"127.0.0.1:{free_port()}",)},
            errors.UNREACHABLE,
            "no KDC of the realm answered",
        ),
    ],
)
def test_kerberos_failures_say_what_to_do(lab, realm, overrides, category, message):
    failure = refused(conn(lab, realm, **overrides))
    assert failure.category == category
    assert message in failure.message
    assert failure.remediation and failure.remediation != errors.REMEDIATION[errors.AUTH_FAILED]


def test_a_wrong_password_is_never_retried_automatically(lab, realm):
    """Active Directory locks an account after a few wrong passwords."""
    assert not refused(conn(lab, realm, password="wrong")).transient


def test_clock_skew_is_explained():
    """The KDC's clock cannot be moved here; the error is MIT's own (its code and text)."""
    skew = krb5.Krb5Error(krb5.init_context(), -1765328347)
    failure = errors.classify(skew, host="ams1")
    assert failure.category == errors.AUTH_FAILED
    assert "clocks differ by more than 5 minutes" in failure.message
    assert "NTP" in failure.remediation


def test_the_realm_configuration_is_private_and_keeps_the_machines(lab, realm):
    probe(conn(lab, realm))
    ours, *rest = os.environ["KRB5_CONFIG"].split(":")
    assert oct(os.stat(ours).st_mode & 0o777) == "0o600"
    with open(ours) as handle:
        text = handle.read()
    assert f"{LAB_REALM} = {{" in text and f"kdc = {realm.kdc}" in text
    assert f"default_realm = {LAB_REALM}" in text  # never the machine's (Debian: ATHENA.MIT.EDU)
    assert f"primary_kdc = {realm.kdc}" in text  # no DNS query for _kerberos-master records
    assert rest  # the machine's own configuration stays in effect, after ours


def test_two_deployments_in_parallel_never_share_a_cache(lab, realm):
    """alice on AMS1 and bob on AMS2 open their pools at the same moment; each node sees its own
    user, no credential cache file is left anywhere, and KRB5CCNAME is as it was."""
    before = os.environ.get("KRB5CCNAME")
    default_cache = f"/tmp/krb5cc_{os.getuid()}"
    existed = os.path.exists(default_cache)
    cache = SessionCache()
    seen: dict[str, str] = {}
    start = threading.Barrier(2)

    def run(node, user):
        connection = conn(lab, realm, node, username=user, password=USERS[user])
        start.wait()
        session = cache.checkout(connection, owner=user)
        try:
            seen[node] = session.run("connection_probe", {}, timeout=20).data["user"]
        finally:
            cache.checkin(session)

    threads = [
        threading.Thread(target=run, args=("AMS1", "alice")),
        threading.Thread(target=run, args=("AMS2", "bob")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    cache.close_all()
    assert seen == {"AMS1": "alice@CORP.EXAMPLE.TEST", "AMS2": "bob@CORP.EXAMPLE.TEST"}
    assert os.environ.get("KRB5CCNAME") == before
    assert os.path.exists(default_cache) == existed
    assert glob.glob(os.path.join(os.environ.get("TMPDIR", "/tmp"), "amsw-krb5-*")) == []


def test_an_ip_address_host_asks_for_the_computer_name(lab, realm):
    """No SPN exists for an address: the product asks for HTTP/<AD name>.<domain>."""
    deployment = Deployment(domain_fqdn="corp.example.test", kerberos_kdcs=f"{realm.kdc}")
    node = Node(name="AMS2", host="127.0.0.1", port=lab.ports["AMS2"], auth="kerberos")
    node.transport, node.cert_validation = "http", True
    node.deployment = deployment
    connection = connection_for(node, "labadmin", USERS["labadmin"], timeout=20)
    assert connection.spn_host == "ams2.corp.example.test"
    assert connection.realm == LAB_REALM and connection.kdcs == (realm.kdc,)
    assert probe(connection)["computer_name"] == "AMS2"
    assert lab.last_auth["AMS2"] == "kerberos"


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("CORP\\alice", "alice@CORP.EXAMPLE.TEST"),
        ("alice@corp.example.test", "alice@CORP.EXAMPLE.TEST"),
        ("alice", "alice@CORP.EXAMPLE.TEST"),
        ("alice@child.corp.example.test", "alice@CHILD.CORP.EXAMPLE.TEST"),
    ],
)
def test_principal_forms(typed, expected):
    assert kerberos.principal(typed, LAB_REALM) == expected


def test_negotiate_uses_kerberos_when_the_realm_answers(lab, realm):
    """Negotiate asks for the same HTTP/<fqdn> ticket first, in the deployment's realm even for a
    bare user name; NTLM is only the fallback."""
    probe(conn(lab, realm, auth="negotiate", username="labadmin"))
    assert lab.last_auth["AMS1"] == "kerberos"


def test_negotiate_falls_back_to_ntlm_without_a_kdc(lab, realm):
    dead = (f"127.0.0.1:{free_port()}",)
    probe(conn(lab, realm, auth="negotiate", username="labadmin", kdcs=dead))
    assert lab.last_auth["AMS1"] == "negotiate"  # NTLM inside SPNEGO
