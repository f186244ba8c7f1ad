"""Installs on lab nodes driven only through the JSON API, with the real Celery worker.

Happy path: every step from the prerequisites to the failover test, on three nodes over NTLM (the
second hop by a scheduled task), on two nodes over a real CredSSP handshake (the second hop by
the delegated password), and on two nodes over Kerberos with tickets from a real MIT KDC. A fault: the domain loses its KDS root key, the prerequisites pause, the
fault is cleared in the lab and the pause is answered with `retry` through the API.
"""

import pytest

from app.lab import certs, scenarios
from app.lab.server import LabServer
from app.lab.store import LabStore
from tests.execution.harness import LAB_PASSWORD, LAB_USER
from tests.kdc import lab_realm
from tests.lab_world import (  # noqa: F401 - the world fixture
    NODES,
    STEPS,
    inputs_for,
    install_by_hand,
    run_step,
    start_world,
    wait_settled,
    world,
)

pytestmark = pytest.mark.slow


def create(
    call,
    store: LabStore,
    server: LabServer,
    auth: str = "ntlm",
    kdcs: str | None = None,
    **https: str | None,
) -> int:
    """A deployment on every lab node; `ca_bundle=PEM` (or None) puts the nodes on HTTPS;
    `kdcs`: the realm's KDCs, for Kerberos."""
    transport = {"transport": "https", "cert_validation": True} if https else {}
    nodes = [
        {"name": n, "host": "127.0.0.1", "port": server.ports[n], "auth": auth} | transport
        for n in server.node_names
    ]
    domain = store.read()["domain"]["fqdn"]
    body = {"name": "API e2e", "domain_fqdn": domain, "nodes": nodes}
    if kdcs:
        body["kerberos_kdcs"] = kdcs
    if https.get("ca_bundle"):
        body["ca_bundle"] = https["ca_bundle"]
    return call("POST", "/deployments", body, expect=201)["id"]


def run_prerequisites(call, deployment_id: int) -> dict:
    """Windows as shipped: the first run asks for the ActiveDirectory module; the client applies
    the offered fix by its id, and the checks pass."""
    first = run_step(call, deployment_id, "prerequisites")
    failed = [c for c in first["runs"][0]["outcome"]["checks"] if c["status"] == "fail"]
    assert [c["key"] for c in failed] == ["ad_module"], first["runs"][0]["outcome"]["summary"]
    return run_step(call, deployment_id, "prerequisites", fix=failed[0]["fix"]["id"])


@pytest.fixture(params=["ntlm-3", "credssp-2", "kerberos-2"])
def route_world(request, tmp_path):
    """(auth, store, server, kdcs): three nodes over NTLM; two whose WinRM services accept CredSSP
    (the operator ran Enable-WSManCredSSP -Role Server on each); or two that accept Kerberos
    tickets from a real MIT KDC (kdcs: its address, given on the deployment)."""
    auth, count = request.param.split("-")
    realm = lab_realm(tmp_path / "kdc", {LAB_USER: LAB_PASSWORD}) if auth == "kerberos" else None
    keytab = realm.keytab if realm else None
    store, server = start_world(tmp_path, NODES[: int(count)], keytab=keytab)
    if auth == "credssp":
        with store.transaction() as state:
            for node in server.node_names:
                scenarios.apply_fault(state, f"credssp:{node}")
    yield auth, store, server, (realm.kdc if realm else None)
    server.stop()
    if realm:
        realm.stop()


def test_install_through_the_api(route_world, lab_api):
    auth, store, server, kdcs = route_world
    call = lab_api
    deployment_id = create(call, store, server, auth, kdcs)
    for step, body in inputs_for(store).items():
        call("PUT", f"/deployments/{deployment_id}/steps/{step}/inputs", body)

    operator_tasks = set()  # actions that ran as a scheduled task with the operator's password
    for step in STEPS:
        if step == "install_ams":
            install_by_hand(store)
            body = inputs_for(store)["install_ams"] | {"license_confirmed": True}
            call("PUT", f"/deployments/{deployment_id}/steps/install_ams/inputs", body)
        if step == "prerequisites":
            settled = run_prerequisites(call, deployment_id)
        else:
            settled = run_step(call, deployment_id, step)
        outcome = settled["runs"][0]["outcome"] or {}
        assert settled["status"] == "done", (step, outcome.get("summary"))
        assert {a["node"] for a in settled["runs"][0]["actions"]} <= set(server.node_names)
        operator_tasks |= {
            a["label"] for a in settled["runs"][0]["actions"] if "(scheduled task)" in a["label"]
        }

    assert set(server.last_auth.values()) == {auth}, server.last_auth
    assert set().union(*server.auth_methods.values()) == {auth}, server.auth_methods
    # The second hop: by a scheduled task over NTLM and Kerberos; directly in the CredSSP sessions
    # (where only the service account test still runs as a task, as the gMSA itself).
    assert bool(operator_tasks) == (auth != "credssp"), operator_tasks
    deployment = call("GET", f"/deployments/{deployment_id}")
    assert deployment["status"] == "completed"
    assert deployment["secrets_held"] == []  # the vault is wiped when the deployment completes
    page = call("GET", f"/deployments/{deployment_id}/events?after=0&limit=1000")
    seqs = [e["seq"] for e in page["events"]]
    assert seqs == list(range(1, len(seqs) + 1))
    export = call("GET", f"/deployments/{deployment_id}/export")
    assert LAB_PASSWORD not in str(page) and LAB_PASSWORD not in str(export)


def test_prerequisites_on_three_nodes_then_a_fault_answered_with_retry(world, lab_api):  # noqa: F811
    store, server = world
    call = lab_api
    happy = create(call, store, server)
    prereqs = inputs_for(store)["prerequisites"]
    call("PUT", f"/deployments/{happy}/steps/prerequisites/inputs", prereqs)
    settled = run_prerequisites(call, happy)
    assert settled["status"] == "done", settled["runs"][0]["outcome"]["summary"]
    assert {a["node"] for a in settled["runs"][0]["actions"]} == set(NODES)

    with store.transaction() as state:
        scenarios.apply_fault(state, "kds_missing")
    second = create(call, store, server)
    call("PUT", f"/deployments/{second}/steps/prerequisites/inputs", prereqs)
    paused = run_step(call, second, "prerequisites")
    assert paused["status"] == "needs_attention"
    assert "KDS" in str(paused["runs"][0]["outcome"]["checks"])
    events = call("GET", f"/deployments/{second}/events?after=0&limit=1000")["events"]
    assert any(e["kind"] == "step.paused" for e in events)

    with store.transaction() as state:
        scenarios.clear_faults(state)
    answer = call(
        "POST", f"/deployments/{second}/steps/prerequisites/decision", {"decision": "retry"}, 202
    )
    assert answer["run"]["attempt"] == 2
    retried = wait_settled(call, second, "prerequisites")
    assert retried["status"] == "done"
    assert [r["attempt"] for r in retried["runs"]] == [2, 1]
    password_free = call("GET", f"/deployments/{second}/status")
    assert LAB_PASSWORD not in str(password_free)


def test_https_nodes_are_validated_against_the_deployments_ca(tmp_path, lab_api):
    """The worker's connections trust the CA the deployment carries, and only it: the same HTTPS
    listeners, a deployment without the CA, and every action fails with the certificate message."""
    store = LabStore(tmp_path / "lab" / "state.json")
    store.replace(scenarios.load_scenario("default", NODES[:2]))
    ca = certs.make_ca("E2E Issuing CA")
    pair = certs.issue(ca, ["127.0.0.1"], tmp_path / "tls")
    server = LabServer(store, NODES[:2], 0, LAB_USER, LAB_PASSWORD, https=True, certificate=pair)
    server.start()
    try:
        call = lab_api
        trusted = create(call, store, server, ca_bundle=ca.cert_pem)
        call(
            "PUT",
            f"/deployments/{trusted}/steps/prerequisites/inputs",
            inputs_for(store)["prerequisites"],
        )
        settled = run_prerequisites(call, trusted)
        assert settled["status"] == "done", settled["runs"][0]["outcome"]["summary"]
        assert set(server.last_auth.values()) == {"ntlm"}

        untrusted = create(call, store, server, ca_bundle=None)
        call(
            "PUT",
            f"/deployments/{untrusted}/steps/prerequisites/inputs",
            inputs_for(store)["prerequisites"],
        )
        failed = run_step(call, untrusted, "prerequisites")
        actions = failed["runs"][0]["actions"]
        assert actions and {a["error_category"] for a in actions} == {"certificate"}, actions
        assert all("does not trust" in a["error_message"] for a in actions)
    finally:
        server.stop()
