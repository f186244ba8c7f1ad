"""Step 7: what was built, where it runs now, who did what, and what to do next.

`Summary.facts` builds the failover cluster's deliverable (app.history.deliverable) from what the
steps recorded: the cluster and its address, the quorum witness, the role and its owner, Access
Manager on each node, the failover test, and whether the role is highly available.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from app.guides.facts import (
    HA_MIN_NODES,
    database_text,
    ha_verdict,
    rounded,
    script,
    skipped_test,
    too_few_nodes,
)
from app.guides.facts import data as output
from app.steps import Step

if TYPE_CHECKING:  # the history builds the record and calls facts(); guides never import it
    from app.history.deliverable import Record

# The steps this deliverable reads.
CLUSTER_STEPS = frozenset(
    {"base_cluster", "quorum", "install_ams", "cluster_role", "failover_test"}
)

# What a cluster member reading says about the nodes, newest reading wins (step order).
NODE_STATE_SCRIPTS = {"cluster_detect": "base_cluster", "role_detect": "cluster_role"}


def _node_states(record: Record) -> dict:
    """{NODE: (state, when, step title)} from the newest cluster membership reading."""
    found: dict[str, tuple[str, datetime | None, str]] = {}
    for name, step_key in NODE_STATE_SCRIPTS.items():  # base cluster first, the role's last
        for action, data in record.outputs(record.final(step_key), name):
            for member in data.get("nodes") or []:
                if isinstance(member, dict) and member.get("name"):
                    found[str(member["name"]).upper()] = (
                        str(member.get("state") or "unknown"),
                        action.finished_at,
                        record.title(step_key),
                    )
    return found


def _cluster(record: Record) -> dict[str, Any]:
    base = record.inputs("base_cluster")
    artifacts = record.artifacts("base_cluster")
    name = str(artifacts.get("cluster_name") or base.get("cluster_name") or "").upper() or None
    seen = None
    for _, data in record.outputs(record.final("base_cluster"), "cluster_detect"):
        if data.get("address"):
            seen = str(data["address"])
    return {
        "name": name,
        "fqdn": f"{name.lower()}.{record.deployment.domain_fqdn}" if name else None,
        "address": seen or base.get("cluster_address") or None,
        "address_entered": base.get("cluster_address") or None,
        "method": artifacts.get("method"),
    }


def _quorum(record: Record) -> dict[str, Any]:
    reading = record.artifacts("quorum").get("quorum") or {}
    entered = record.inputs("quorum")
    kind = reading.get("witness_kind")
    where = (
        reading.get("share_path") or reading.get("cloud_account") or reading.get("witness_resource")
    )
    if reading and not kind:
        text = f"{reading.get('quorum_type') or 'Node majority'} quorum, no witness"
    elif kind:
        text = f"{kind}, {where}" if where else str(kind)
    else:
        text = None
    return {
        "text": text,
        "state": reading.get("witness_state"),
        "entered": entered.get("witness_type"),
        "node_count": reading.get("node_count"),
    }


def _failover(record: Record) -> tuple[list[dict], str | None, datetime | None]:
    """(rows per node with the time of each move, owner after the test, when) from the test."""
    final = record.final("failover_test")
    if final is None:
        return [], None, None
    table = list((final.get("outcome") or {}).get("artifacts", {}).get("failover_table") or [])
    moved_at: dict[str, datetime | None] = {}
    owner, owner_at = None, None
    for action in record.actions(final):
        if script(action) != "failover_move":
            continue
        data = output(action) or {}
        phase = action.phase or ""
        if phase.startswith("move_"):
            moved_at[phase.removeprefix("move_").upper()] = action.finished_at
        if data.get("owner") and data.get("state") == "Online":
            owner, owner_at = str(data["owner"]).upper(), action.finished_at
    rows = [
        {
            "node": str(r.get("node") or ""),
            "result": "pass" if r.get("passed") else "fail",  # not "passed": exports drop pass*
            "owner": r.get("owner"),
            "state": r.get("state"),
            "service_running": bool(r.get("service_running")),
            "health_status": r.get("health_status"),
            "seconds": rounded(r.get("seconds")),
            "at": moved_at.get(str(r.get("node") or "").upper()),
            "error": r.get("error"),
        }
        for r in table
    ]
    return rows, owner, owner_at


def _ams(record: Record) -> tuple[str | None, dict[str, dict]]:
    """(version asked for, {NODE: version, account, database, start type}) from the install step."""
    wanted = record.inputs("prerequisites").get("ams_version") or None
    artifacts = record.artifacts("install_ams").get("nodes") or {}
    per_node: dict[str, dict] = {
        str(n).upper(): {
            "version": (d or {}).get("version"),
            "account": (d or {}).get("account"),
            "start_type": (d or {}).get("start_type"),
            "database": None,
        }
        for n, d in artifacts.items()
    }
    for action, data in record.outputs(record.final("install_ams"), "ams_detect"):
        entry = per_node.setdefault(action.node_name.upper(), {})
        entry["database"] = database_text(data.get("connection_string")) or entry.get("database")
        entry["version"] = (
            entry.get("version") or data.get("version") or data.get("uninstall_version")
        )
        entry["account"] = entry.get("account") or (data.get("service") or {}).get("account")
    # The role step reads the service again once clustered (start type Manual): newer.
    for action, data in record.outputs(record.final("cluster_role"), "ams_detect"):
        if data.get("service"):
            entry = per_node.setdefault(action.node_name.upper(), {})
            entry["start_type"] = data["service"].get("start_type") or entry.get("start_type")
    return wanted, per_node


def availability(
    active: list[str], failover_status: str, failover_rows: list[dict], skip_reason: str | None
) -> dict[str, Any]:
    """Whether the deployment is highly available, in plain words.

    status: 'yes' (two or more nodes, the role answered on at least two of them), 'no' (fewer than
    two nodes, or the failover test passed on fewer than two), 'unverified' (the failover test was
    skipped) or 'pending' (not tested yet)."""
    few = too_few_nodes(
        active,
        "the role has no other node to fail over to. Add a node to the cluster and its role "
        "(Add-ClusterNode), then run the failover test again in a new deployment.",
    )
    if few:
        return few
    passed = [r["node"] for r in failover_rows if r.get("result") == "pass"]
    if failover_status == "skipped":
        return skipped_test(
            "failover",
            skip_reason,
            "nothing shows that Access Manager starts on another node. Move the role to each "
            "node in Failover Cluster Manager and check the service there.",
        )
    if failover_status != "done":
        return ha_verdict("pending", "The failover test has not finished.")
    if len(passed) < HA_MIN_NODES:
        return ha_verdict(
            "no",
            f"Access Manager answered on {len(passed)} node(s) only "
            f"({', '.join(passed) or 'none'}) during the failover test.",
        )
    return ha_verdict(
        "yes",
        f"Access Manager started and answered on {len(passed)} nodes "
        f"({', '.join(passed)}) during the failover test.",
    )


def cluster_facts(record: Record) -> dict | None:
    """The failover cluster's deliverable, or None when the record is not of this guide."""
    if not CLUSTER_STEPS.issubset(record.by_key):
        return None
    deployment = record.deployment
    states = _node_states(record)
    version, ams_nodes = _ams(record)
    failover_rows, owner_after_test, owner_at = _failover(record)
    failover_by_node = {r["node"].upper(): r for r in failover_rows}
    role_inputs = record.inputs("cluster_role")
    role_artifacts = record.artifacts("cluster_role")
    role_name = str(role_inputs.get("access_point_name") or "").upper() or None
    nodes = []
    for n in deployment.nodes:
        state = states.get(n.name.upper())
        nodes.append(
            {
                "name": n.name,
                "host": n.host,
                "excluded": n.excluded,
                "exclude_reason": n.exclude_reason,
                "state": state[0] if state else None,
                "state_at": state[1] if state else None,
                "state_from": state[2] if state else None,
                "ams": ams_nodes.get(n.name.upper()) or {},
                "failover": failover_by_node.get(n.name.upper()),
            }
        )
    active = record.active_nodes
    failover = record.row("failover_test")
    if owner_after_test:
        owner = {"node": owner_after_test, "at": owner_at, "source": "after the failover test"}
    elif role_artifacts.get("owner"):
        owner = {
            "node": str(role_artifacts["owner"]).upper(),
            "at": (record.final("cluster_role") or {}).get("finished_at"),
            "source": "when the role came online",
        }
    else:
        owner = {"node": None, "at": None, "source": None}
    return {
        "cluster": _cluster(record),
        "quorum": _quorum(record),
        "role": {
            "name": role_name,
            "fqdn": f"{role_name.lower()}.{deployment.domain_fqdn}" if role_name else None,
            "address": role_inputs.get("access_point_address") or None,
            "state": role_artifacts.get("state"),
            "owner": owner,
        },
        "ams_version": version,
        "nodes": nodes,
        "active_nodes": active,
        "failover": failover_rows,
        "steps": record.steps(),
        "skipped": record.skipped(),
        "excluded": record.excluded(),
        "ha": availability(
            active,
            failover.get("status", "not_started"),
            failover_rows,
            failover.get("skip_reason"),
        ),
    }


class Summary(Step):
    """No remote work: the deployment's deliverable (app.history.deliverable)."""

    key = "summary"
    title = "Summary"
    purpose = "Review the finished installation and keep its report."
    guidance = (
        "The cluster part of the installation is complete. Configure Access Manager's features "
        "(authentication, authorization rules, agents) in the configuration tool on the node that "
        "currently owns the role.",
        "Set a master key recovery password for the database and keep it offline.",
    )
    runnable = False

    def facts(self, record: Record) -> dict | None:
        """The deliverable's facts for this guide (app.history.deliverable.build calls it)."""
        return cluster_facts(record)


STEP = Summary()
