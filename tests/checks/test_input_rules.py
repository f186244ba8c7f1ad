"""Issue 21, item 7: inputs that catch a mistake before a node does, each rule with its edges."""

import ipaddress

import pytest

from app import validators as v
from app.deployments.forms import DeploymentForm
from app.deployments.service import node_addresses
from app.execution import probe
from app.extensions import db
from app.guides.cluster.quorum import STEP as QUORUM
from app.guides.cluster.quorum import QuorumForm
from app.lab import scenarios
from app.lab.context import ScriptFailure
from app.lab.handlers import cluster, role
from app.lab.handlers import prerequisites as lab_prereq
from app.models import Deployment
from tests.conftest import csrf_token
from tests.deployment_form import NODES, create, deployment_id
from tests.guides.cluster_views import make_view, ok
from tests.lab.cluster_world import ctx, world
from tests.lab.fake_ctx import FakeCtx, FakeStore

NET = [ipaddress.ip_network("10.20.0.0/24")]
NODE_ADDRESSES = {"AMS1": [("10.20.0.11", 24)], "AMS2": [("10.20.0.12", 24)]}


# --- addresses no cluster can use -----------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("169.254.0.1", "APIPA"),
        ("169.254.255.254", "APIPA"),
        ("255.255.255.255", "broadcast address"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("::ffff:10.20.0.50", "IPv4 address 10.20.0.50 itself"),
    ],
)
def test_special_addresses_are_refused_with_the_reason(raw, words):
    with pytest.raises(ValueError, match=words):
        v.static_address(raw, what="Cluster address")


@pytest.mark.parametrize("raw", ["169.253.255.255", "169.255.0.1", "10.20.0.1", "fd00::50"])
def test_addresses_next_to_the_refused_ranges_pass(raw):
    assert v.static_address(raw) == raw


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("10.20.0.0", "network address of the nodes' subnet 10.20.0.0/24"),
        ("10.20.0.255", "broadcast address of the nodes' subnet 10.20.0.0/24"),
    ],
)
def test_network_and_broadcast_of_the_nodes_subnet_are_refused(raw, words):
    with pytest.raises(ValueError, match=words):
        v.static_address(raw, networks=NET)
    assert words in v.address_problem(raw, "Cluster address", NODE_ADDRESSES)
    # The same address is fine without a known prefix (then nothing says it is an edge) ...
    assert v.address_problem(raw, "Cluster address", {"AMS1": [("10.20.0.11", None)]}) is None
    # ... and with another prefix where it is a host address.
    assert v.address_problem(raw, "Cluster address", {"AMS1": [("10.20.0.11", 8)]}) is None


@pytest.mark.parametrize("raw", ["10.20.0.1", "10.20.0.254"])
def test_first_and_last_host_addresses_of_the_subnet_pass(raw):
    assert v.static_address(raw, networks=NET) == raw
    assert v.address_problem(raw, "Cluster address", NODE_ADDRESSES) is None


def test_a_nodes_own_address_is_refused_naming_the_node():
    message = v.address_problem("10.20.0.12", "Cluster address", NODE_ADDRESSES)
    assert message.startswith("Cluster address 10.20.0.12 is the address of node AMS2")


def test_an_address_outside_every_node_subnet_is_refused():
    message = v.address_problem("10.30.0.5", "Access point address", NODE_ADDRESSES)
    assert "not in a subnet of the nodes: 10.20.0.0/24 (AMS1)" in message
    # Another IP version has no known subnet: nothing to compare with.
    assert v.address_problem("fd00::50", "Access point address", NODE_ADDRESSES) is None
    # Nodes on two subnets (a multi-subnet cluster): either one will do.
    both = NODE_ADDRESSES | {"AMS3": [("10.30.0.13", 24)]}
    assert v.address_problem("10.30.0.5", "Access point address", both) is None


def test_the_same_address_twice_is_refused():
    message = v.address_problem(
        "10.20.0.50", "Access point address", NODE_ADDRESSES, {"the cluster address": "10.20.0.50"}
    )
    assert message == (
        "Access point address 10.20.0.50 is already the cluster address; each needs an address "
        "of its own."
    )


# --- node names, hosts and ports ---------------------------------------------------------------


@pytest.mark.parametrize("raw", ["AMS1.corp.example.com", "ams1.corp.example.com.", "ams1.corp"])
def test_an_fqdn_as_node_name_says_where_each_part_goes(raw):
    with pytest.raises(ValueError) as refused:
        v.node_name(raw)
    message = str(refused.value)
    assert "enter AMS1 here" in message
    assert f"{raw.lower()} as the WinRM host" in message
    with pytest.raises(ValueError, match="enter AMS1 here"):
        v.node_names([raw, "AMS2"])


def test_a_plain_name_with_a_bad_character_keeps_its_own_message():
    with pytest.raises(ValueError, match="letters, digits and hyphens"):
        v.node_name("ams_1")
    assert v.node_name("ams1") == "AMS1"


def test_two_nodes_on_the_same_host_and_port_are_refused():
    with pytest.raises(
        ValueError, match=r"AMS1 and AMS2 have the same WinRM host and port \(h1:5985\)"
    ):
        v.distinct_endpoints([("AMS1", "h1", 5985), ("AMS2", "H1.", 5985)])
    v.distinct_endpoints([("AMS1", "127.0.0.1", 55985), ("AMS2", "127.0.0.1", 55986)])
    v.distinct_endpoints([("AMS1", "h1", 5985), ("AMS2", "h2", 5985)])


def _node_rows(**extra):
    return NODES | extra


def test_deployment_form_refuses_duplicate_host_and_port(admin_client, app):
    response = create(admin_client, **{"nodes-1-host": "127.0.0.1", "nodes-1-port": "55985"})
    assert response.status_code == 200
    assert "AMS1 and AMS2 have the same WinRM host and port (127.0.0.1:55985)" in (
        response.get_data(as_text=True)
    )
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(Deployment)) == 0


def test_deployment_form_gives_the_fqdn_hint(admin_client, app):
    response = create(admin_client, **{"nodes-0-name": "ams1.corp.example.test"})
    html = response.get_data(as_text=True)
    assert (
        "enter AMS1 here (the computer name) and ams1.corp.example.test as the WinRM host" in html
    )


def test_validate_certificate_is_offered_for_https_only(admin_client, app):
    html = admin_client.get("/deployments/new").get_data(as_text=True)
    assert 'data-show-when="transport=https"' in html  # disclose.js hides it for HTTP
    assert "js/disclose.js" in html
    with app.test_request_context():
        form = DeploymentForm(
            data={
                "name": "x",
                "domain_fqdn": "corp.example.test",
                "nodes": [
                    {
                        "name": "A1",
                        "host": "a1",
                        "port": 5985,
                        "transport": "http",
                        "auth": "ntlm",
                        "cert_validation": False,
                    },
                    {
                        "name": "A2",
                        "host": "a2",
                        "port": 5986,
                        "transport": "https",
                        "auth": "ntlm",
                        "cert_validation": False,
                    },
                ],
            },
            meta={"csrf": False},
        )
        assert form.validate(), form.errors
        # HTTP has no certificate: an unticked box there means nothing and is not kept.
        assert [n["cert_validation"] for n in form.data["nodes"]] == [True, False]


# --- Azure storage account names ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("ab", "has 2 characters; Azure allows 3 to 24"),
        ("a" * 25, "has 25 characters; Azure allows 3 to 24"),
        ("AmsWitness", "capital letters; Azure names are lowercase: amswitness"),
        ("ams-witness", "only lowercase letters and digits"),
        ("ams.witness", "only lowercase letters and digits"),
        ("", "required"),
    ],
)
def test_storage_account_names_follow_azure(raw, words):
    with pytest.raises(ValueError, match=words):
        v.storage_account_name(raw)


@pytest.mark.parametrize("raw", ["abc", "a" * 24, "amswitness01", "123"])
def test_storage_account_names_azure_accepts(raw):
    assert v.storage_account_name(raw) == raw


def test_quorum_form_refuses_an_uppercase_account_and_shows_fields_per_kind(app):
    with app.test_request_context():
        form = QuorumForm(
            data={"witness_type": "cloud", "cloud_account": "AmsWitness"}, meta={"csrf": False}
        )
        assert not form.validate()
        assert "lowercase" in form.cloud_account.errors[0]
        kinds = {f.name: f.render_kw.get("data-show-when") for f in form if f.render_kw}
    assert kinds == {
        "share_path": "witness_type=file_share",
        "cloud_account": "witness_type=cloud",
        "cloud_access_key": "witness_type=cloud",
        "cloud_endpoint": "witness_type=cloud",
        "disk_name": "witness_type=disk",
    }


# --- a file share witness on a cluster node ----------------------------------------------------


@pytest.mark.parametrize(
    ("path", "node"),
    [
        ("\\\\AMS2\\witness", "AMS2"),
        ("\\\\ams1.corp.example.test\\witness", "AMS1"),
        ("\\\\fs1\\witness", None),
        ("\\\\AMS10\\witness", None),
    ],
)
def test_share_on_node(path, node):
    nodes = [("AMS1", "ams1.corp.example.test"), ("AMS2", "10.20.0.12")]
    assert v.share_on_node(path, nodes) == node


def test_quorum_on_a_node_share_warns_but_goes_on():
    fsw = {
        "quorum_type": "Majority",
        "witness_kind": "File Share Quorum Witness",
        "share_path": "\\\\AMS2\\witness",
        "node_count": 2,
    }
    view = make_view(
        "quorum",
        {"detect": {"AMS1": ok("AMS1", "quorum_get", fsw)}},
        share_path="\\\\AMS2\\witness",
    )
    finish = QUORUM.advance(view)
    assert finish.status == "done"
    warning = next(c for c in finish.checks if c.key == "witness_on_node")
    assert warning.status == "warn" and warning.node == "AMS2"
    assert "outside the cluster" in warning.remediation


# --- the nodes' real addresses: probe, lab, cross-check ------------------------------------------


def test_the_lab_probe_reports_the_node_address_and_prefix():
    store = FakeStore(scenarios.default_state(["AMS1", "AMS2"]))
    data = lab_prereq.connection_probe(FakeCtx(store, "AMS2"))
    assert data["addresses"] == [
        {"address": "10.20.0.12", "prefix_length": 24, "interface": "Ethernet"}
    ]
    assert probe.addresses(data) == [{"address": "10.20.0.12", "prefix_length": 24}]


def test_probe_addresses_drop_what_is_not_an_address():
    raw = {
        "addresses": [
            {"address": "10.0.0.5", "prefix_length": 24},
            {"address": "fe80::1%12", "prefix_length": 64},
            {"address": "not-an-ip", "prefix_length": 24},
            {"address": "10.0.0.6", "prefix_length": 99},
            "junk",
        ]
    }
    assert probe.addresses(raw) == [
        {"address": "10.0.0.5", "prefix_length": 24},
        {"address": "fe80::1", "prefix_length": 64},
        {"address": "10.0.0.6", "prefix_length": None},
    ]


def test_cross_check_uses_the_addresses_the_probe_found(admin_client, app):
    from app.events.publish import publish
    from app.guides import get_guide

    create(admin_client)
    dep = deployment_id(app)
    with app.app_context():
        deployment = db.session.get(Deployment, dep)
        step = get_guide(deployment.guide_key).step("base_cluster")

        def probed():
            return node_addresses(deployment)

        # Nothing probed yet: only the rules that need no node data apply.
        assert step.cross_check(deployment, {"cluster_address": "10.30.0.5"}, probed) == {}
        for name, address in (("AMS1", "10.20.0.11"), ("AMS2", "10.20.0.12")):
            payload = {"ok": True, "addresses": [{"address": address, "prefix_length": 24}]}
            publish(dep, probe.TESTED, payload, node=name)
        db.session.commit()
        deployment = db.session.get(Deployment, dep)
        errors = step.cross_check(deployment, {"cluster_address": "10.30.0.5"}, probed)
        assert "not in a subnet of the nodes" in errors["cluster_address"]
        errors = step.cross_check(deployment, {"cluster_address": "10.20.0.12"}, probed)
        assert "is the address of node AMS2" in errors["cluster_address"]
        errors = step.cross_check(deployment, {"cluster_address": "10.20.0.255"}, probed)
        assert "broadcast address of the nodes' subnet" in errors["cluster_address"]
        assert step.cross_check(deployment, {"cluster_address": "10.20.0.50"}, probed) == {}


def test_the_step_page_refuses_the_access_point_on_the_cluster_address(admin_client, app):
    create(admin_client)
    dep = deployment_id(app)

    def save(step_key: str, data: dict):
        url = f"/deployments/{dep}/steps/{step_key}"
        return admin_client.post(url, data=data | {"csrf_token": csrf_token(admin_client, url)})

    saved = save("base_cluster", {"cluster_name": "amsclu", "cluster_address": "10.20.0.50"})
    assert saved.status_code == 302
    response = save(
        "cluster_role", {"access_point_name": "amsweb", "access_point_address": "10.20.0.50"}
    )
    assert response.status_code == 400
    assert "is already the cluster address" in response.get_data(as_text=True)


# --- the lab is at least as strict as Windows --------------------------------------------------


@pytest.mark.parametrize(
    ("address", "words"),
    [
        ("10.30.0.5", "was not found on any cluster network"),
        ("10.20.0.255", "network or broadcast address"),
        ("10.20.0.0", "network or broadcast address"),
        ("169.254.0.1", "not a valid unicast address"),
        ("10.20.0.11", "already in use"),
    ],
)
def test_lab_new_cluster_refuses_addresses_windows_refuses(address, words):
    store = world()
    with pytest.raises(ScriptFailure, match=words):
        cluster.cluster_create(
            ctx(store, auth="credssp", Name="AMSCLU", Node=["AMS1", "AMS2"], StaticAddress=address)
        )
    assert store.state["cluster"] is None


def test_lab_role_refuses_an_address_off_the_cluster_network():
    store = world()
    cluster.cluster_create(
        ctx(store, auth="credssp", Name="AMSCLU", Node=["AMS1", "AMS2"], StaticAddress="10.20.0.50")
    )
    hints = store.state["suggested_inputs"]
    with store.transaction() as state:
        for node in state["nodes"].values():
            scenarios.install_ams(node, hints["ams_version"], hints["gmsa"], state=state)
    with pytest.raises(ScriptFailure, match="not found on any cluster network"):
        role.role_create(ctx(store, auth="credssp", Name="AMSWEB", StaticAddress="10.99.0.51"))


def test_an_address_windows_refused_points_back_to_the_form_field():
    from app.guides.cluster.base_cluster import STEP as BASE
    from tests.guides.cluster_views import failed

    detect = {"exists": False, "feature_installed": True}
    view = make_view(
        "base_cluster",
        {
            "detect": {n: ok(n, "cluster_detect", detect) for n in ("AMS1", "AMS2")},
            "create": {
                "AMS1": failed(
                    "AMS1",
                    "cluster_create",
                    "New-Cluster : The IP address '10.20.0.50' is already in use on the network.",
                )
            },
        },
        run_validation=False,
    )
    finish = BASE.advance(view)
    check = next(c for c in finish.checks if c.status == "fail")
    assert check.fix == {
        "kind": "field",
        "field": "cluster_address",
        "label": "Cluster static IP address",
    }
    assert "Cluster static IP address" in check.remediation
