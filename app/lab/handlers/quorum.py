"""Lab models of quorum_get and quorum_set (Get-ClusterQuorum / Set-ClusterQuorum)."""

from __future__ import annotations

from app.lab.context import ScriptContext, ScriptFailure
from app.lab.handlers import handler
from app.lab.handlers.cluster import require_cluster
from app.lab.scenarios import expand_principals

WITNESS_DISPLAY = {
    "file_share": "File Share Quorum Witness",
    "cloud": "Cloud Witness",
    "disk": "Physical Disk",
}
_WIDE_PRINCIPALS = {"EVERYONE", "AUTHENTICATED USERS"}


@handler("quorum_get")
def quorum_get(ctx: ScriptContext) -> dict:
    """Quorum type and witness as Get-ClusterQuorum shows them on 2016 and later."""
    cluster = require_cluster(ctx.store.read(), "Get-ClusterQuorum")
    quorum = cluster.get("quorum") or {}
    witness = quorum.get("witness") or None
    result = {
        "quorum_type": quorum.get("type", "Majority"),
        "witness_kind": None,
        "witness_resource": None,
        "witness_state": None,
        "share_path": None,
        "cloud_account": None,
        "cloud_endpoint": None,
        "node_count": len(cluster.get("nodes", {})),
    }
    if witness:
        kind = witness.get("kind")
        result.update(
            witness_kind=WITNESS_DISPLAY.get(kind, kind),
            witness_resource=witness.get("resource") or _resource_name(kind),
            witness_state="Online",
            share_path=witness.get("path") if kind == "file_share" else None,
            cloud_account=witness.get("account") if kind == "cloud" else None,
            cloud_endpoint=witness.get("endpoint") if kind == "cloud" else None,
        )
    return result


def _resource_name(kind: str | None) -> str:
    return {"file_share": "File Share Witness", "cloud": "Cloud Witness"}.get(kind or "", "Witness")


@handler("quorum_set")
def quorum_set(ctx: ScriptContext) -> dict:
    """Set-ClusterQuorum: the share must exist and let the cluster's computer account write."""
    kind = ctx.params.get("WitnessType")
    ctx.progress("Set-ClusterQuorum", f"Configuring a {kind} witness", 20)
    with ctx.store.transaction() as state:
        cluster = require_cluster(state, "Set-ClusterQuorum")
        witness = _witness(state, cluster, kind, ctx.params)
        cluster["quorum"] = {"type": "Majority", "witness": witness}
    return {
        "witness_type": kind,
        "quorum_type": "Majority",
        "witness_resource": witness and (witness.get("resource") or _resource_name(kind)),
    }


def _witness(state: dict, cluster: dict, kind: str, params: dict) -> dict | None:
    if kind == "file_share":
        return _file_share(state, cluster, str(params.get("SharePath") or ""))
    if kind == "cloud":
        account = str(params.get("AccountName") or "")
        if not account or not params.get("AccessKey"):
            raise ScriptFailure("AccountName and AccessKey are required for a cloud witness.")
        return {"kind": "cloud", "account": account, "endpoint": params.get("Endpoint") or None}
    if kind == "disk":
        return _disk(cluster, str(params.get("DiskName") or ""))
    if kind == "none":
        return None
    raise ScriptFailure(
        f"Cannot validate argument on parameter 'WitnessType'. '{kind}' is not valid."
    )


def _file_share(state: dict, cluster: dict, path: str) -> dict:
    shares = state.get("file_shares", {})
    key = next((k for k in shares if k.lower() == path.rstrip("\\").lower()), None)
    prefix = (
        f"Set-ClusterQuorum : There was an error configuring the file share witness '{path}'.\n"
        "    Unable to save property changes for 'File Share Witness'.\n    "
    )
    if key is None:
        raise ScriptFailure(prefix + "The network name cannot be found.")
    if not _writable_by_cluster(state, cluster, shares[key].get("writable_by", [])):
        raise ScriptFailure(prefix + "Access is denied.")
    return {"kind": "file_share", "path": key}


def _writable_by_cluster(state: dict, cluster: dict, principals: list[str]) -> bool:
    """The cluster name object writes the witness; 'Domain Computers' covers every computer."""
    cno = f"{cluster['name']}$".upper()
    allowed = expand_principals(state, principals)
    bare = {p.split("\\", 1)[-1].upper() for p in principals}
    is_computer = cluster["name"].upper() in {
        c.upper() for c in state["domain"].get("computers", {})
    }
    return (
        cno in allowed
        or bool(bare & _WIDE_PRINCIPALS)
        or ("DOMAIN COMPUTERS" in bare and is_computer)
    )


def _disk(cluster: dict, name: str) -> dict:
    for group in cluster.get("groups", {}).values():
        for resource in group.get("resources", []):
            if resource.get("type") == "Physical Disk" and resource["name"].lower() == name.lower():
                return {"kind": "disk", "resource": resource["name"]}
    raise ScriptFailure(
        f"Set-ClusterQuorum : The cluster resource '{name}' could not be found. "
        "A disk witness needs a shared disk that is already in the cluster's Available Storage."
    )
