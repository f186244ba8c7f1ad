"""Driving steps 2-6 against the lab models (no network): a FakeStore that keeps blobs, a view
builder, and a runner that plays the execution layer (vault secrets, installer copy)."""

import hashlib

from app.lab import scenarios
from app.lab.handlers.ams import apply_configuration_tool
from app.steps import Finish, NodeInfo, RunView
from tests.lab.fake_ctx import FakeCtx, FakeStore, run_action

NODES = ["AMS1", "AMS2"]
VAULT = {
    "winrm_username": "CORP\\operator",
    "winrm_password": "Passw0rd!",
    "cloud_access_key": "a2V5",
}


class BlobStore(FakeStore):
    """FakeStore plus the content-addressed blob call cluster_validate uses."""

    def __init__(self, state: dict) -> None:
        super().__init__(state)
        self.blobs: dict[str, bytes] = {}

    def put_blob(self, data: bytes) -> str:
        name = hashlib.sha256(data).hexdigest()
        self.blobs[name] = data
        return name


def world(*specs: str, scenario: str = "default") -> BlobStore:
    return BlobStore(scenarios.load_scenario("+".join([scenario, *specs]), NODES))


def ctx(store, node="AMS1", auth="negotiate", script="", **params) -> FakeCtx:
    """A context for calling a handler directly; `script` gives it the vetted script's text."""
    return FakeCtx(store, node, params, auth=auth, script=script)


def all_inputs(store: BlobStore, **per_step) -> dict:
    hints = store.state["suggested_inputs"]
    inputs = {
        "prerequisites": {k: hints[k] for k in ("ams_version", "gmsa", "sql_connection_string")},
        "base_cluster": {
            "cluster_name": hints["cluster_name"],
            "cluster_address": hints["cluster_address"],
            "run_validation": True,
        },
        "quorum": {"witness_type": "file_share", "share_path": hints["share_path"]},
        "install_ams": {
            "install_mode": "unattended",
            "installer_name": f"LithnetAccessManagerService-{hints['ams_version']}-x64.exe",
            "certificate_thumbprint": hints["certificate_thumbprint"],
            "https_port": 443,
            "web_app_enabled": True,
            "api_enabled": True,
        },
        "cluster_role": {
            "access_point_name": hints["access_point_name"],
            "access_point_address": hints["access_point_address"],
        },
        "failover_test": {"move_timeout": 60},
    }
    for key, values in per_step.items():
        inputs[key].update(values)
    return inputs


def copy_installer(store: BlobStore, node: str, path: str) -> None:
    """What the execution layer does before ams_install_start: Client.copy of the installer."""
    with store.transaction() as state:
        state["nodes"][node]["files"][path] = {"sha256": "0" * 64, "size": 1, "blob": "0" * 64}


def configure_by_hand(store: BlobStore, license_node: str = "AMS1") -> None:
    """The operator's configuration-tool work on every node (certificate binding, license)."""
    with store.transaction() as state:
        thumbprint = state["suggested_inputs"]["certificate_thumbprint"]
        for name, node in state["nodes"].items():
            apply_configuration_tool(
                node, thumbprint, 443, "LICENSE" if name == license_node else None
            )


def drive(step, store: BlobStore, inputs: dict, auth: str = "negotiate", limit: int = 80):
    """Run a step to its Finish against the lab models; returns (finish, phase names)."""
    view = RunView(
        deployment_name="lab",
        domain_fqdn=store.state["domain"]["fqdn"],
        nodes=tuple(NodeInfo(n, n.lower(), i, auth=auth) for i, n in enumerate(NODES)),
        inputs=inputs[step.key],
        all_inputs=inputs,
        secret_names=frozenset(VAULT),
    )
    ran = []
    for _ in range(limit):
        outcome = step.advance(view)
        if isinstance(outcome, Finish):
            return outcome, ran
        results = {}
        for action in outcome.actions:
            if action.script == "ams_install_start":
                copy_installer(store, action.node, action.params["InstallerPath"])
            params = {**action.params, **{p: VAULT[e] for p, e in action.secrets.items()}}
            results[action.node] = run_action(
                store, type(action)(action.node, action.script, params), auth
            )
        view.results[outcome.name] = results
        ran.append(outcome.name)
    raise AssertionError(f"no Finish after {limit} phases: {ran}")
