"""HTTPS with certificate validation against an internal CA: the product's runner (pypsrp,
requests, OpenSSL) against a lab listener whose certificate a test CA signed.

A good certificate validates against the deployment's CA bundle; a certificate for another host
name, an expired one and one from a CA the deployment does not trust each fail with their own
message; validation off still connects."""

import pytest

from app.lab import certs, scenarios
from app.lab.server import LabServer
from app.lab.store import LabStore
from app.remote import errors
from app.remote.runner import Connection, RemoteError, run_script
from tests.lab.conftest import NODES, PASSWORD, USER


@pytest.fixture(scope="module")
def ca():
    return certs.make_ca("Corp Issuing CA")


@pytest.fixture
def listener(tmp_path, ca):
    """Start a lab whose HTTPS certificate is issued as asked: listener(names, expired, by=ca)."""
    started = []

    def start(names=("127.0.0.1", "localhost"), expired=False, by=None):
        folder = tmp_path / f"lab{len(started)}"
        store = LabStore(folder / "state.json")
        store.replace(scenarios.default_state(NODES))
        pair = certs.issue(by or ca, list(names), folder / "tls", expired=expired)
        server = LabServer(store, NODES, 0, USER, PASSWORD, https=True, certificate=pair)
        started.append(server.start())
        return server

    yield start
    for server in started:
        server.stop()


def probe(server, ca_pem, validate=True, auth="ntlm"):
    conn = Connection(
        "127.0.0.1",
        port=server.ports["node1"],
        transport="https",
        auth=auth,
        cert_validation=validate,
        ca_bundle=ca_pem,
        username=USER,
        password=PASSWORD,
        connection_timeout=3,
        read_timeout=10,
    )
    return run_script(conn, "connection_probe", {}, timeout=20)


def refused(server, ca_pem) -> RemoteError:
    with pytest.raises(RemoteError) as failure:
        probe(server, ca_pem)
    return failure.value


@pytest.mark.parametrize("auth", ["ntlm", "basic"])
def test_certificate_from_the_deployments_ca_validates(listener, ca, auth):
    result = probe(listener(), ca.cert_pem, auth=auth)
    assert result.data["computer_name"]


def test_without_the_ca_the_system_store_does_not_trust_it(listener):
    failure = refused(listener(), None)
    assert failure.category == errors.CERTIFICATE
    assert "CA this deployment does not trust" in failure.message


def test_wrong_host_name(listener, ca):
    failure = refused(listener(names=("ams1.corp.example.test",)), ca.cert_pem)
    assert failure.category == errors.CERTIFICATE
    assert "issued to another name" in failure.message
    assert "Subject Alternative Names" in failure.remediation


def test_expired_certificate(listener, ca):
    failure = refused(listener(expired=True), ca.cert_pem)
    assert failure.category == errors.CERTIFICATE
    assert "expired" in failure.message
    assert "Renew" in failure.remediation


def test_unknown_ca(listener, ca):
    other = certs.make_ca("Someone Else's CA")
    failure = refused(listener(by=other), ca.cert_pem)
    assert failure.category == errors.CERTIFICATE
    assert "does not trust" in failure.message
    assert not failure.transient  # retrying cannot help


def test_validation_off_still_connects(listener):
    other = certs.make_ca("Someone Else's CA")
    result = probe(listener(names=("elsewhere.example",), by=other), None, validate=False)
    assert result.data["computer_name"]
