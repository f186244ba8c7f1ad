"""Lab models of the cluster role scripts: role_detect, role_create, role_wait,
role_start and role_diagnostics. Clustering lithnetams makes its start type Manual on every node; the group
comes online on the node that created it unless the lab fault role_fails_on names that node.

Lab-only node key (added with setdefault): `cluster_log`, lines Get-ClusterLog would return.
"""

from __future__ import annotations

import time

from app.lab import scenarios
from app.lab.context import ScriptContext, ScriptFailure
from app.lab.handlers import elapsed, handler
from app.lab.handlers.cluster import (
    double_hop_guard,
    find_group,
    place_group,
    require_cluster,
    set_ams_start_type,
)
from app.lab.scenarios import AMS_DISPLAY_NAME, AMS_SERVICE, find_node


def group_facts(name: str, group: dict) -> dict:
    """What role_detect reports about one group."""
    resources = group.get("resources", [])
    ip = next((r for r in resources if r.get("type") == "IP Address"), None)
    return {
        "group": name,
        "owner": group.get("owner"),
        "state": group.get("state"),
        "address": ip and ip.get("parameters", {}).get("Address"),
        "resources": [
            {"name": r["name"], "type": r["type"], "state": r.get("state")} for r in resources
        ],
    }


def ams_roles(cluster: dict, service_name: str = AMS_SERVICE) -> list[dict]:
    """Every group holding a Generic Service resource for the service."""
    roles = []
    for name, group in cluster.get("groups", {}).items():
        for resource in group.get("resources", []):
            parameters = resource.get("parameters", {})
            if resource.get("type") == "Generic Service" and (
                str(parameters.get("ServiceName", "")).lower() == service_name.lower()
            ):
                roles.append(
                    {
                        **group_facts(name, group),
                        "resource": resource["name"],
                        "resource_state": resource.get("state"),
                    }
                )
    return roles


@handler("role_detect")
def role_detect(ctx: ScriptContext) -> dict:
    """Generic Service resources for lithnetams, and whichever group already has the name."""
    cluster = require_cluster(ctx.store.read(), "Get-ClusterResource")
    service_name = str(ctx.params.get("ServiceName") or AMS_SERVICE)
    named = find_group(cluster, str(ctx.params["Name"]))
    return {
        "service_name": service_name,
        "roles": ams_roles(cluster, service_name),
        "name_in_use": group_facts(*named) if named else None,
        "nodes": [{"name": n, "state": s} for n, s in cluster.get("nodes", {}).items()],
    }


@handler("role_create", reaches=("nodes",))
def role_create(ctx: ScriptContext) -> dict:
    """Add-ClusterGenericServiceRole: only a delegating logon gets past the second hop."""
    double_hop_guard(ctx, "Add-ClusterGenericServiceRole", str(ctx.params.get("Name")))
    return _add_role(ctx)


def _add_role(ctx: ScriptContext) -> dict:
    started = time.monotonic()
    name = str(ctx.params["Name"]).upper()
    address = str(ctx.params["StaticAddress"])
    service_name = str(ctx.params.get("ServiceName") or AMS_SERVICE)
    with ctx.store.transaction() as state:
        cluster = require_cluster(state, "Add-ClusterGenericServiceRole")
        owner = find_node(state, ctx.node)
        _check_new_role(state, cluster, name, address, service_name, owner)
        cluster["groups"][name] = _role_group(name, address, service_name)
        for node in state["nodes"].values():
            set_ams_start_type(node, "Manual")
        domain = state["domain"]
        domain["computers"].setdefault(
            name,
            {
                "sam": f"{name}$",
                "dns_host_name": f"{name.lower()}.{domain['fqdn']}",
                "dn": f"CN={name},OU=Servers,{domain['dn']}",
                "enabled": True,
            },
        )
        group_state = place_group(state, name, owner["name"])
    ctx.progress("Add-ClusterGenericServiceRole", f"Role {name} is {group_state}", 100)
    return {
        "group": name,
        "owner": owner["name"],
        "state": group_state,
        "warnings": [],
        "elapsed_seconds": elapsed(started),
    }


def _check_new_role(
    state: dict, cluster: dict, name: str, address: str, service_name: str, owner: dict
) -> None:
    prefix = (
        f"Add-ClusterGenericServiceRole : An error occurred while creating the role '{name}'.\n    "
    )
    if find_group(cluster, name):
        raise ScriptFailure(prefix + f"A cluster group named '{name}' already exists.")
    existing = ams_roles(cluster, service_name)
    if existing:
        raise ScriptFailure(
            prefix + f"The service '{service_name}' is already clustered in role "
            f"'{existing[0]['group']}'."
        )
    if service_name not in owner["services"]:
        raise ScriptFailure(
            prefix + f"The service '{service_name}' was not found on node '{owner['name']}'."
        )
    taken = {cluster.get("address")} | {n.get("ip_address") for n in state["nodes"].values()}
    if address in taken:
        raise ScriptFailure(prefix + f"The IP address '{address}' is already in use.")
    refusal = scenarios.static_address_refusal(state, address)
    if refusal:
        raise ScriptFailure(prefix + refusal)


def _role_group(name: str, address: str, service_name: str) -> dict:
    return {
        "owner": None,
        "state": "Pending",
        "preferred_owners": [],
        "resources": [
            {
                "name": name,
                "type": "Network Name",
                "state": "Pending",
                "parameters": {"DnsName": name},
            },
            {
                "name": f"IP Address {address}",
                "type": "IP Address",
                "state": "Pending",
                "parameters": {"Address": address},
            },
            {
                "name": AMS_DISPLAY_NAME,
                "type": "Generic Service",
                "state": "Pending",
                "parameters": {"ServiceName": service_name, "UseNetworkName": 1},
            },
        ],
    }


def require_group(state: dict, name: str, cmdlet: str) -> tuple[str, dict]:
    """A cluster group by name, or the cmdlet's not-found error."""
    found = find_group(require_cluster(state, cmdlet), name)
    if found is None:
        raise ScriptFailure(f"{cmdlet} : The cluster group '{name}' was not found.")
    return found


@handler("role_wait")
def role_wait(ctx: ScriptContext) -> dict:
    """Get-ClusterGroup until Online or Failed; the lab settles groups at once."""
    started = time.monotonic()
    name, group = require_group(ctx.store.read(), str(ctx.params["Name"]), "Get-ClusterGroup")
    ctx.progress(f"Cluster role {name}", f"{group['state']} on {group['owner']}", 100)
    facts = group_facts(name, group)
    return {
        "group": name,
        "state": group["state"],
        "owner": group["owner"],
        "timed_out": group["state"] not in ("Online", "Failed"),
        "elapsed_seconds": elapsed(started),
        "resources": facts["resources"],
    }


@handler("role_start")
def role_start(ctx: ScriptContext) -> dict:
    """Start-ClusterGroup: bring the group online on its owner (fails again on role_fails_on)."""
    started = time.monotonic()
    with ctx.store.transaction() as state:
        name, group = require_group(state, str(ctx.params["Name"]), "Start-ClusterGroup")
        owner = group.get("owner") or find_node(state, ctx.node)["name"]
        group_state = place_group(state, name, owner)
    error = None
    if group_state != "Online":
        error = (
            f"Start-ClusterGroup : The clustered role '{name}' failed to come online on node "
            f"'{owner}'."
        )
    ctx.progress(f"Start-ClusterGroup {name}", f"{group_state} on {owner}", 100)
    return {
        "group": name,
        "owner": owner,
        "state": group_state,
        "error": error,
        "elapsed_seconds": elapsed(started),
    }


@handler("role_diagnostics", reaches=("nodes",))
def role_diagnostics(ctx: ScriptContext) -> dict:
    """Cluster log lines naming the role or the service, and the AMS event log of this node.

    Get-ClusterLog is documented as needing CredSSP remotely (rule second_hop): without a
    delegating logon the script catches its error and still reports the events."""
    log_error = ctx.hop_error("nodes")
    state = ctx.store.read()
    node = find_node(state, ctx.node)
    name = str(ctx.params["Name"])
    max_lines = int(ctx.params.get("MaxLines") or 60)
    needles = (name.lower(), AMS_SERVICE, AMS_DISPLAY_NAME.lower())
    lines = [ln for ln in node.get("cluster_log", []) if any(n in ln.lower() for n in needles)]
    events = [e for e in node.get("event_log", []) if e.get("log") == "Lithnet Access Manager"]
    max_events = int(ctx.params.get("MaxEvents") or 20)
    return {
        "computer": node["name"],
        "cluster_log": [] if log_error else lines[-max_lines:],
        "cluster_log_error": log_error,
        "events": [
            {"time": e["time"], "level": e["level"], "id": e["id"], "message": e["message"]}
            for e in reversed(events[-max_events:])
        ],
    }
