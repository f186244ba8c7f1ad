"""Lab models of the base-cluster scripts: cluster_detect, cluster_validate, cluster_create.

Also the cluster-state helpers the quorum, role and failover models share: finding the cluster and
its groups, the double-hop rule, and placing a group on a node with its service effects.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from app.lab import scenarios
from app.lab.context import ScriptContext, ScriptFailure
from app.lab.handlers import elapsed, handler
from app.lab.scenarios import (
    AMS_DISPLAY_NAME,
    AMS_SERVICE,
    AMS_SERVICE_KEY,
    FEATURE,
    find_node,
    iso,
)

CLUSTER_GROUP = "Cluster Group"
REPORTS_DIR = "C:\\Windows\\Cluster\\Reports\\"
INVALID_STATE = (
    "The group or resource is not in the correct state to perform the requested operation. "
    "(Exception from HRESULT: 0x8007139F)"
)
_TEST_ISSUES = {
    "warn": [
        ("Network - Validate Network Communication", "The test reported some warnings.."),
        (
            "System Configuration - Validate Software Update Levels",
            "The test reported some warnings..",
        ),
    ],
    "fail": [
        ("Network - Validate IP Configuration", "The test failed."),
        ("Network - Validate Network Communication", "The test reported some warnings.."),
    ],
}


def now_iso() -> str:
    """The lab clock, in the state's timestamp format."""
    return iso(datetime.now(UTC))


def double_hop_guard(ctx: ScriptContext, cmdlet: str, target: str) -> None:
    """Rule second_hop: New-Cluster, Add-ClusterGenericServiceRole and Get-ClusterLog reach the
    other nodes (and AD); Microsoft documents they cannot run remotely without CredSSP."""
    if not ctx.can_reach("nodes"):
        raise ScriptFailure(
            f"{cmdlet} : An error occurred while creating '{target}'.\n"
            f"    The credentials of this remote session ({ctx.auth}) cannot be delegated to the "
            "other nodes and Active Directory.\n"
            "    Access is denied. (Exception from HRESULT: 0x80070005 (E_ACCESSDENIED))"
        )


def require_cluster(state: dict, cmdlet: str) -> dict:
    """The cluster record, or the error the FailoverClusters cmdlets give on a non-member."""
    cluster = state.get("cluster")
    if not cluster:
        raise ScriptFailure(
            f"{cmdlet} : The cluster service is not running. Make sure that the service is "
            "running on all nodes in the cluster."
        )
    return cluster


def find_group(cluster: dict, name: str) -> tuple[str, dict] | None:
    """A cluster group by name (case-insensitive)."""
    for key, group in cluster.get("groups", {}).items():
        if key.upper() == (name or "").upper():
            return key, group
    return None


def cluster_node_name(cluster: dict, name: str) -> str | None:
    """The cluster's spelling of a member node name, if it is a member."""
    return next((n for n in cluster.get("nodes", {}) if n.upper() == (name or "").upper()), None)


def set_ams_start_type(node: dict, start_type: str) -> None:
    """Service start type plus its registry Start value (2 Automatic, 3 Manual)."""
    service = node["services"].get(AMS_SERVICE)
    if service:
        service["start_type"] = start_type
        node["registry"].setdefault(AMS_SERVICE_KEY, {})["Start"] = (
            2 if start_type == "Automatic" else 3
        )


def place_group(state: dict, group_name: str, owner: str) -> str:
    """Bring a group online on `owner`; its Generic Service runs there and stops elsewhere.

    Returns the group's new state: Failed when the lab fault role_fails_on names the owner or the
    owner has no such service (the cluster log and the AMS event log get an entry), else Online.
    """
    cluster = state["cluster"]
    _, group = find_group(cluster, group_name)
    group["owner"] = owner
    service_name = _generic_service_name(group)
    failing = owner.upper() in {n.upper() for n in state.get("faults", {}).get("role_fails_on", [])}
    owner_node = find_node(state, owner)
    logon_refused = None
    if service_name and service_name not in owner_node["services"]:
        failing = True
    elif service_name:
        # A service running as a gMSA starts only once the node can retrieve the password
        # (allowed principal, KDS root key usable): Windows' error 1069 otherwise.
        account = str(owner_node["services"][service_name].get("account") or "")
        if not scenarios.service_can_log_on(state, owner_node, account):
            failing, logon_refused = True, account
    for name, node in state["nodes"].items():
        service = node["services"].get(service_name) if service_name else None
        if service:
            service["status"] = (
                "Running" if name.upper() == owner.upper() and not failing else "Stopped"
            )
    group["state"] = "Failed" if failing else "Online"
    for resource in group.get("resources", []):
        resource["state"] = group["state"]
    if logon_refused is not None:
        _record_logon_failure(owner_node, group_name, logon_refused)
    elif failing:
        _record_failure(owner_node, group_name)
    return group["state"]


def _log_group_failure(node: dict, group_name: str, error: str) -> str:
    """The service resource's `error` and the group's failure in the node's cluster log; returns
    their time."""
    stamp = now_iso()
    node.setdefault("cluster_log", []).extend(
        [
            f"{stamp} ERR   [RES] Generic Service <{AMS_DISPLAY_NAME}>: {error}",
            f"{stamp} WARN  [RCM] Group {group_name} failed; the resource {AMS_DISPLAY_NAME} "
            "did not come online.",
        ]
    )
    return stamp


def _record_logon_failure(node: dict, group_name: str, account: str) -> None:
    """The service never ran: the Service Control Manager's 7038 and the resource's 1069."""
    _log_group_failure(
        node,
        group_name,
        "Failed to start the service. Error: 1069 (The service did not start due to a logon "
        "failure).",
    )
    node.setdefault("event_log", []).append(scenarios.logon_failure_event(account))


def _generic_service_name(group: dict) -> str | None:
    for resource in group.get("resources", []):
        if resource.get("type") == "Generic Service":
            return resource.get("parameters", {}).get("ServiceName")
    return None


def _record_failure(node: dict, group_name: str) -> None:
    stamp = _log_group_failure(
        node, group_name, "Service failed during initialization. Error: 1067."
    )
    node.setdefault("event_log", []).append(
        {
            "log": "Lithnet Access Manager",
            "source": "Lithnet Access Manager Service",
            "id": 2,
            "level": "Error",
            "time": stamp,
            "message": "The service could not start: the web host failed to initialise.",
        }
    )


@handler("cluster_detect")
def cluster_detect(ctx: ScriptContext) -> dict:
    """Get-Cluster / Get-ClusterNode as seen from this node."""
    state = ctx.store.read()
    node = find_node(state, ctx.node)
    service = node["services"].get("ClusSvc")
    result = {
        "computer": node["name"],
        "feature_installed": bool(node["features"].get(FEATURE)),
        "cluster_service": service["status"] if service else None,
        "exists": False,
        "name": None,
        "address": None,
        "nodes": [],
    }
    cluster = state.get("cluster")
    running = bool(service) and service["status"] == "Running"
    if result["feature_installed"] and running and cluster and cluster_node_name(cluster, ctx.node):
        result.update(
            exists=True,
            name=cluster["name"],
            address=cluster.get("address"),
            nodes=[{"name": n, "state": s} for n, s in cluster["nodes"].items()],
        )
    return result


@handler("cluster_validate", reaches=("nodes",))
def cluster_validate(ctx: ScriptContext) -> dict:
    """Test-Cluster: honours the test_cluster fault and nodes without the clustering feature.

    It reads every listed node from this one: the second hop (rule second_hop)."""
    names = list(ctx.params.get("Node") or [])
    if not ctx.can_reach("nodes"):
        other = next((n for n in names if n.upper() != ctx.node.upper()), ctx.node)
        raise ScriptFailure(
            f"Test-Cluster : You do not have administrative privileges on the server '{other}'. "
            "Access is denied. (Exception from HRESULT: 0x80070005 (E_ACCESSDENIED))"
        )
    state = ctx.store.read()
    issues = []
    for name in names:
        try:
            node = find_node(state, name)
        except KeyError:
            raise ScriptFailure(
                f"Test-Cluster : The computer '{name}' could not be reached. Make sure the "
                "computer name is correct and that it is reachable on the network."
            ) from None
        if not node["features"].get(FEATURE):
            issues.append(
                (
                    "System Configuration - Validate Cluster Service and Driver Settings",
                    f"The test failed. The Failover Clustering feature is not installed on {name}.",
                )
            )
    issues.extend(_TEST_ISSUES.get(state.get("faults", {}).get("test_cluster") or "", []))
    for percent, status in ((10, "Inventory"), (45, "Network"), (80, "System Configuration")):
        ctx.progress("Test-Cluster", f"Validating {', '.join(names)}: {status}", percent)
    return _validation_result(ctx, names, issues)


def _validation_result(ctx: ScriptContext, names: list[str], issues: list[tuple]) -> dict:
    parsed = [
        {"test": test, "severity": "failure" if "fail" in msg else "warning", "message": msg}
        for test, msg in issues
    ]
    failed = any(i["severity"] == "failure" for i in parsed)
    verdict = (
        "ClusterNotApproved"
        if failed
        else ("ClusterConditionallyApproved" if parsed else "ClusterApproved")
    )
    summary = f"Test Result: HadUnselectedTests, {verdict}"
    for test, msg in issues:
        ctx.warning(f"{test}: {msg}")
    ctx.warning(summary)
    created = now_iso()
    path = (
        REPORTS_DIR
        + f"AmsClusterWizard-{created[:19].replace('-', '').replace(':', '').replace('T', '-')}.htm"
    )
    html = _report_html(names, parsed, verdict, created)
    blob = ctx.store.put_blob(html.encode("utf-8"))
    with ctx.store.transaction() as state:
        node = find_node(state, ctx.node)
        node.setdefault("files", {})[path] = {
            "sha256": blob,
            "size": len(html.encode()),
            "blob": blob,
        }
        if state.get("cluster"):
            state["cluster"].setdefault("validation_reports", []).append(
                {"created": created, "result": verdict, "path": path}
            )
    return {
        "warnings": [f"{test}: {msg}" for test, msg in issues] + [summary],
        "report_path": path,
        "report_html": html,
        "report_truncated": False,
    }


def _report_html(names: list[str], issues: list[dict], verdict: str, created: str) -> str:
    rows = "".join(
        f"<tr><td>{i['test']}</td><td>{i['severity']}</td><td>{i['message']}</td></tr>"
        for i in issues
    )
    return (
        "<html><head><title>Failover Cluster Validation Report</title></head><body>"
        f"<h1>Failover Cluster Validation Report</h1><p>Nodes: {', '.join(names)}</p>"
        f"<p>Started {created}</p><p>{verdict}</p><table>{rows}</table></body></html>"
    )


@handler("cluster_create", reaches=("nodes",))
def cluster_create(ctx: ScriptContext) -> dict:
    """New-Cluster: only a delegating logon (CredSSP, a scheduled task) gets past the second hop."""
    double_hop_guard(ctx, "New-Cluster", str(ctx.params.get("Name")))
    return _new_cluster(ctx)


def _new_cluster(ctx: ScriptContext) -> dict:
    started = time.monotonic()
    name = str(ctx.params["Name"]).upper()
    address = str(ctx.params["StaticAddress"])
    with ctx.store.transaction() as state:
        nodes = [find_node_or_fail(state, n) for n in ctx.params.get("Node") or []]
        _check_new_cluster(state, name, address, nodes)
        for node in nodes:
            node["services"]["ClusSvc"].update(start_type="Automatic", status="Running")
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
        state["cluster"] = {
            "name": name,
            "fqdn": f"{name.lower()}.{domain['fqdn']}",
            "address": address,
            "nodes": {n["name"]: "Up" for n in nodes},
            "quorum": {"type": "Majority", "witness": None},
            "groups": {CLUSTER_GROUP: _core_group(name, address, nodes[0]["name"])},
            "validation_reports": [],
        }
    ctx.progress("New-Cluster", f"Cluster {name} created", 100)
    return {
        "name": name,
        "nodes": [{"name": n["name"], "state": "Up"} for n in nodes],
        "warnings": [],
        "elapsed_seconds": elapsed(started),
    }


def find_node_or_fail(state: dict, name: str) -> dict:
    """The node record, or New-Cluster's error for a computer it cannot reach."""
    try:
        return find_node(state, name)
    except KeyError:
        raise ScriptFailure(
            f"New-Cluster : There was an error validating the node '{name}'. The computer could "
            "not be reached."
        ) from None


def _check_new_cluster(state: dict, name: str, address: str, nodes: list[dict]) -> None:
    cluster = state.get("cluster")
    for node in nodes:
        if cluster and cluster_node_name(cluster, node["name"]):
            raise ScriptFailure(
                f"New-Cluster : The node '{node['name']}' is already a member of cluster "
                f"'{cluster['name']}'."
            )
        if not node["features"].get(FEATURE) or "ClusSvc" not in node["services"]:
            raise ScriptFailure(
                f"New-Cluster : The Failover Clustering feature is not installed on "
                f"'{node['name']}'. Install it with Install-WindowsFeature Failover-Clustering."
            )
        if node.get("ip_address") == address:
            raise ScriptFailure(
                f"New-Cluster : The IP address '{address}' is already in use on the network."
            )
    refusal = scenarios.static_address_refusal(state, address)
    if refusal:
        raise ScriptFailure(f"New-Cluster : {refusal}")
    if name not in state["domain"]["computers"] and not state["domain"].get(
        "operator_can_create_computers", True
    ):
        raise ScriptFailure(
            f"New-Cluster : There was an error creating the cluster name object '{name}' in Active "
            "Directory. You do not have permission to create computer objects in the OU. "
            "Access is denied."
        )


def _core_group(name: str, address: str, owner: str) -> dict:
    return {
        "owner": owner,
        "state": "Online",
        "preferred_owners": [],
        "resources": [
            {
                "name": "Cluster Name",
                "type": "Network Name",
                "state": "Online",
                "parameters": {"DnsName": name},
            },
            {
                "name": "Cluster IP Address",
                "type": "IP Address",
                "state": "Online",
                "parameters": {"Address": address},
            },
        ],
    }
