"""Lab models of failover_move (Move-ClusterGroup) and failover_probe (service + health-check)."""

from __future__ import annotations

import time

from app.lab.context import ScriptContext, ScriptFailure
from app.lab.handlers import elapsed, handler
from app.lab.handlers.ams import DEFAULT_HOST_CONFIG, covers
from app.lab.handlers.cluster import INVALID_STATE, cluster_node_name, place_group
from app.lab.handlers.role import require_group
from app.lab.scenarios import AMS_SERVICE, find_node


@handler("failover_move")
def failover_move(ctx: ScriptContext) -> dict:
    """Move the group; it fails on a node named by role_fails_on (service stopped there)."""
    started = time.monotonic()
    target = str(ctx.params["Node"])
    ctx.progress(f"Move-ClusterGroup {ctx.params['Name']}", f"To {target}", 10)
    with ctx.store.transaction() as state:
        name, _ = require_group(state, str(ctx.params["Name"]), "Move-ClusterGroup")
        member = cluster_node_name(state["cluster"], target)
        if member is None:
            raise ScriptFailure(
                f"Move-ClusterGroup : The node '{target}' is not a member of cluster "
                f"'{state['cluster']['name']}'."
            )
        if state["cluster"]["nodes"][member] != "Up":
            raise ScriptFailure(
                f"Move-ClusterGroup : An error occurred while moving the clustered role '{name}'.\n"
                f"    The cluster node '{member}' is {state['cluster']['nodes'][member]}."
            )
        group_state = place_group(state, name, member)
    error = None
    if group_state != "Online":
        error = (
            f"An error occurred while moving the clustered role '{name}'.\n"
            f"The clustered role '{name}' failed to come online on node '{member}'. {INVALID_STATE}"
        )
    return {
        "group": name,
        "target": target,
        "owner": member,
        "state": group_state,
        "error": error,
        "elapsed_seconds": elapsed(started),
    }


@handler("failover_probe")
def failover_probe(ctx: ScriptContext) -> dict:
    """Service status here, and https://<access point>/health-check served by the owner."""
    started = time.monotonic()
    state = ctx.store.read()
    node = find_node(state, ctx.node)
    host = str(ctx.params["HostName"])
    port = int(ctx.params.get("Port") or 443)
    service = node["services"].get(AMS_SERVICE)
    uri = f"https://{host}/health-check" if port == 443 else f"https://{host}:{port}/health-check"
    status, error = _health(state, host, port, bool(ctx.params.get("ValidateCertificate", True)))
    return {
        "computer": node["name"],
        "service_status": service["status"] if service else "NotInstalled",
        "uri": uri,
        "status_code": status,
        "error": error,
        "elapsed_ms": int(elapsed(started) * 1000),
    }


def _health(state: dict, host: str, port: int, validate: bool) -> tuple[int | None, str | None]:
    """What Invoke-WebRequest would see when the access point name is resolved and requested."""
    role = _role_for_host(state, host)
    if role is None:
        return None, f"The remote name could not be resolved: '{host}'"
    group = role
    owner = find_node(state, group["owner"]) if group.get("owner") else None
    service = owner and owner["services"].get(AMS_SERVICE)
    if group.get("state") != "Online" or not service or service["status"] != "Running":
        return None, "Unable to connect to the remote server"
    binding = owner.get("http_bindings", {}).get(f"0.0.0.0:{port}")
    if binding is None:
        return None, "The underlying connection was closed: An unexpected error occurred on a send."
    cert = next(
        (
            c
            for c in owner.get("certificates", [])
            if c["thumbprint"].upper() == binding["thumbprint"].upper()
        ),
        None,
    )
    if validate and (cert is None or not covers(host, cert.get("dns_names", []))):
        return None, (
            "The underlying connection was closed: Could not establish trust relationship for the "
            "SSL/TLS secure channel."
        )
    if not (owner.get("ams_host_config") or DEFAULT_HOST_CONFIG).get("web_app_enabled"):
        return 404, "The remote server returned an error: (404) Not Found."
    return 200, None


def _role_for_host(state: dict, host: str) -> dict | None:
    """The group whose network name answers to `host` (short name or FQDN)."""
    cluster = state.get("cluster") or {}
    short = host.split(".", 1)[0].upper()
    domain = state["domain"]["fqdn"].lower()
    if "." in host and host.split(".", 1)[1].lower() != domain:
        return None
    for group in cluster.get("groups", {}).values():
        for resource in group.get("resources", []):
            dns = str(resource.get("parameters", {}).get("DnsName", "")).upper()
            if resource.get("type") == "Network Name" and dns == short:
                return group
    return None
