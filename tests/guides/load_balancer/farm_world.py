"""Driving the load-balancer guide on the lab's "farm" world with the real worker: a deployment of
that guide, the inputs that pass there, the operator's manual work (install, configure, drain)."""

from __future__ import annotations

from app.lab import operator, scenarios
from app.lab.store import LabStore
from tests.lab_world import LICENSE, new_deployment, operator_id, save_inputs, wait_run

GUIDE_KEY = "ams-load-balancer"
V3 = "3.0.1638.0"
V2 = "2.1.1069.0"


def new_farm_deployment(server, store: LabStore, name: str) -> int:
    """A deployment of the load-balancer guide on every lab node (NTLM over HTTP)."""
    return new_deployment(server, store, name, guide_key=GUIDE_KEY)


def farm_inputs(store: LabStore, version: str) -> dict[str, dict]:
    hints = store.read()["suggested_inputs"]
    return {
        "prerequisites": {
            "ams_version": version,
            "gmsa": hints["gmsa"],
            "sql_connection_string": hints["sql_connection_string"],
            "license_key": LICENSE,
        },
        "first_node": {
            "certificate_thumbprint": hints["certificate_thumbprint"],
            "https_port": 443,
        },
        "host_config": {
            "external_host_name": hints["external_host_name"],
            "web_app_enabled": True,
            "agent_access_enabled": True,
        },
        "ip_detection": {
            "balancer_layer": "application",
            "forward_limit": 1,
            "known_proxies": hints["known_proxies"],
            "known_networks": "",
            "settings_confirmed": True,
        },
        "farm_test": {
            "balancer_address": hints["balancer_address"],
            "requests_per_round": 4,
            "validate_certificate": True,
        },
    }


def install_nodes(store: LabStore, version: str, nodes: list[str]) -> None:
    """The operator installs `version` on the nodes and saves the configuration tool (license on
    the deployment's first node only)."""
    with store.transaction() as state:
        state["suggested_inputs"]["ams_version"] = version
        operator.install_by_hand(state, nodes)
        first = next(iter(state["nodes"]))
        for name in nodes:
            license_data = operator.LAB_LICENSE if name == first else None
            operator.apply_configuration_tool(
                state["nodes"][name],
                state["suggested_inputs"]["certificate_thumbprint"],
                443,
                license_data,
            )


def drain_all_but(store: LabStore, keep: str | None) -> None:
    """At the balancer, every node but `keep` is drained (None: every node back in service)."""
    with store.transaction() as state:
        balancer = state["balancer"]
        balancer["drained"] = [n for n in balancer["members"] if keep is not None and n != keep]


def inject(store: LabStore, *specs: str) -> None:
    with store.transaction() as state:
        for spec in specs:
            scenarios.apply_fault(state, spec)


def clear(store: LabStore) -> None:
    with store.transaction() as state:
        scenarios.clear_faults(state)


def retry(deployment_id: int, step_key: str, fix: str | None = None, timeout: float = 90):
    """resolve_pause(retry) with the offered fix, then wait for the attempt."""
    from app.execution import service

    run = service.resolve_pause(
        deployment_id, step_key, "retry", None, None, operator_id(), fix=fix
    )
    return wait_run(run.id, timeout)


def confirm_license(deployment_id: int, store: LabStore) -> None:
    body = dict(farm_inputs(store, V3)["first_node"], license_confirmed=True)
    save_inputs(deployment_id, "first_node", body)


def offered(run, prefix: str = "lb_round:") -> str:
    """The round fix the outcome offers."""
    fixes = [
        c["fix"]["id"]
        for c in (run.outcome or {}).get("checks") or []
        if c.get("fix") and str(c["fix"].get("id", "")).startswith(prefix)
    ]
    assert len(set(fixes)) == 1, fixes
    return fixes[0]
