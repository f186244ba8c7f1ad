"""Step 1: the shared prerequisite phases and checks, read for a farm.

The phases (probe, facts, domain, service account, SQL) and nearly every verdict are the cluster
guide's, shared by both (app/guides/shared/prerequisites.py and checks.py), imported, not copied. A farm has
no Failover Clustering feature and no quorum: the per-node checks leave the feature out, the
version check prefers version 3, and the node count asks for two nodes or more. The fixes on offer
are the ones that apply to a farm (Active Directory module, allowed principals, restart).
"""

from __future__ import annotations

from dataclasses import replace

from app.guides.shared import checks
from app.guides.shared import prerequisites as shared
from app.guides.shared.checks import Target
from app.steps import ActionResult, Check, Finish, RunView

LB_FIXES = frozenset({"install_ad_module", "set_gmsa_principals", "restart"})
OS_ADVICE = (
    "Access Manager 2.1 and 3.x run on Windows Server 2012 R2 or later; use Windows Server 2016 "
    "or later for a new farm."
)


def node_checks(view: RunView, target: Target, per_node: dict[str, dict]) -> list[Check]:
    """Domain, operating system, pending restart and SQL reachability of each node."""
    found: list[Check] = []
    for node, facts in per_node.items():
        os_found = checks.os_check(node, facts)
        if os_found.status != "pass":
            os_found = replace(os_found, remediation=OS_ADVICE)
        found += [
            checks.domain_check(node, facts, view.domain_fqdn),
            os_found,
            checks.reboot_check(node, facts, shared.restart_fix([node])),
            checks.sql_tcp_check(node, target, facts),
        ]
    return found


def version_check(target: Target) -> Check:
    """Version 3 is what Lithnet documents for a farm; 2.1 works; 1.x cannot share a database."""
    title = "Access Manager version"
    major, minor = (int(p) for p in target.version.split(".")[:2])
    if major < 2:
        return Check(
            "ams_version",
            title,
            "fail",
            f"Version {target.version} was chosen.",
            "Access Manager 1.x keeps its settings on each server and has no health-check page, "
            "so it cannot run as a farm behind a load balancer. Choose 3.x (or 2.1).",
        )
    if (major, minor) == (2, 0):
        return Check(
            "ams_version",
            title,
            "warn",
            f"Version {target.version} was chosen.",
            "This guide follows the 2.1 and 3.x layout (one shared database, per-node host "
            "configuration). Prefer 3.x for a new farm.",
        )
    if major > 3:
        return Check(
            "ams_version",
            title,
            "warn",
            f"Version {target.version} was chosen.",
            "This wizard knows versions 2.1 and 3.x; check Lithnet's documentation for this one.",
        )
    advice = "" if major == 3 else "Version 3 is the one Lithnet documents for a farm."
    return Check(
        "ams_version", title, "pass", f"Version {target.version} will be installed.", advice
    )


def node_count_check(count: int) -> Check:
    """A farm needs two nodes or more to survive one of them."""
    if count < 2:
        return Check(
            "node_count",
            "Number of nodes",
            "fail",
            f"{count} node.",
            "Add a second node to the deployment: with one node the balancer has nothing to fail "
            "over to.",
        )
    return Check(
        "node_count",
        "Number of nodes",
        "info",
        f"{count} nodes behind one balancer.",
        "No quorum or witness is involved: each node serves on its own and shares only the "
        "database.",
    )


class FarmPrerequisites(shared.Prerequisites):
    """The cluster guide's read-only prerequisite phases, with the farm's verdict."""

    purpose = (
        "Confirm the domain, the nodes and SQL Server are ready for a farm before the wizard "
        "changes anything."
    )
    guidance = (
        "Every node is checked in parallel over WinRM; nothing is changed. Failed checks say what "
        "is wrong and how to fix it; run the checks as often as you need.",
        "A farm needs the Enterprise edition, one service account that every node may use (a "
        "group managed service account is best), a usable KDS root key and a full SQL Server (or "
        "Azure SQL / Amazon RDS) prepared in advance. SQL Server Express cannot be shared. The "
        "nodes need no Failover Clustering feature.",
    )
    fixes = LB_FIXES

    def verdict(
        self, view: RunView, target: Target, probe: dict[str, ActionResult], reachable: list[str]
    ) -> Finish:
        return shared.finish(
            view,
            target,
            probe,
            reachable,
            per_node_checks=node_checks,
            version_check=version_check,
            count_check=node_count_check,
        )


STEP = FarmPrerequisites()
