"""Shared reading of phase results for the guides' steps: outputs, failures, polls, double hop."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from app.remote.errors import (
    AUTH_FAILED,
    INTERRUPTED,
    REMEDIATION,
    TIMEOUT,
    UNREACHABLE,
    is_second_hop,
    unreachable_remediation,
)
from app.steps import Action, ActionResult, Check, Finish, Phase, RunView
from app.wizard.route import TASK_SCRIPT

SECOND_HOP_REMEDIATION = (
    "This command reaches other machines (Active Directory, SQL Server, the other nodes) from the "
    "node itself, which a remote session cannot do with Kerberos or NTLM (the second hop). The "
    "wizard runs it in a scheduled task with your credentials unless the node's connection is "
    "CredSSP; if the task route is refused on this node, enable CredSSP (Enable-WSManCredSSP "
    "-Role Server), set the node's authentication to CredSSP, and retry. If it already ran that "
    "way, the other machine refused the account itself: check its rights there (a local "
    "administrator on every node; for a cluster, allowed to create computer objects in the "
    "nodes' OU)."
)
# Scripts that act on other machines with the operator's (or the service account's) identity: the
# guides send them through app.wizard.route, as task_run or, over CredSSP, by their own name.
REACHES_PAST_NODE = frozenset(
    {
        TASK_SCRIPT,
        "cluster_create",
        "cluster_validate",
        "lb_sql_connection_test",
        "prereq_domain_facts",
        "prereq_set_gmsa_principals",
        "prereq_sql_facts",
        "role_create",
        "role_diagnostics",
    }
)
TASK_REMEDIATION = (
    "The scheduled task could not run as the WinRM account. Enter the account as DOMAIN\\user, "
    "make sure it is a local administrator on the node and may log on as a batch job, then retry."
)


def outputs(results: dict[str, ActionResult] | None) -> dict[str, Any]:
    """Parsed JSON output of each node whose action succeeded."""
    return {n: r.data for n, r in (results or {}).items() if r.ok and isinstance(r.data, dict)}


def failures(results: dict[str, ActionResult] | None) -> dict[str, ActionResult]:
    """Actions that did not succeed (or succeeded without the one JSON object expected)."""
    return {n: r for n, r in (results or {}).items() if not r.ok or not isinstance(r.data, dict)}


def failure_checks(
    results: dict[str, ActionResult] | None, key: str, title: str, remediation: str = ""
) -> list[Check]:
    """One failing Check per node whose action failed, with its error as evidence.

    `remediation` is the step's advice for a failure of the command itself; a node that could not
    be reached, refused the credentials or dropped the session gets the advice for that instead.
    """
    return [
        Check(
            key=f"{key}:{node}",
            title=f"{title} on {node}",
            status="fail",
            evidence=result.error_message or f"{result.script} ended with status {result.status}",
            remediation=transport_remediation(result) or remediation or remediation_for(result),
            node=node,
        )
        for node, result in failures(results).items()
    ]


CONNECTION_LOST = (
    "The connection to the node was lost while the command ran (the node or its WinRM service "
    "may have restarted), so the wizard does not know whether it took effect. Wait until the "
    "node answers again, then retry: the step detects what is already done and does not repeat it."
)
UNREACHABLE_MID_ACTION = (
    " If the node restarted while a command ran, wait until it answers again, then retry: the "
    "step detects whether the command took effect and does not repeat it."
)


ADDRESS_REFUSALS = (
    "already in use",
    "not found on any cluster network",
    "network or broadcast address",
    "not a valid unicast address",
)


def point_to_address_field(checks: list[Check], field: str, label: str) -> list[Check]:
    """A failure because Windows refused the address typed in this step's form (in use on the
    network, on no cluster network) sends the operator back to that field, with a link."""
    out = []
    for check in checks:
        text = check.evidence.lower()
        if check.status == "fail" and any(h in text for h in ADDRESS_REFUSALS):
            in_use = "already in use" in text
            check = replace(
                check,
                remediation=(
                    ("Another machine already answers on this address. " if in_use else "")
                    + f"Enter a free address on the nodes' network in '{label}' (this step's "
                    "inputs, above), save, then run the step again. Nothing was created."
                ),
                fix={"kind": "field", "field": field, "label": label},
            )
        out.append(check)
    return out


# "Cannot reach the node (host:port): ..." as app.remote.errors words it.
_ENDPOINT = re.compile(r"\((?P<host>[^()\s]+):(?P<port>\d{1,5})\)")


def transport_remediation(result: ActionResult) -> str:
    """Advice for a failure to reach the node rather than of the command, else ''."""
    if "shell was not found" in (result.error_message or "").lower():
        return CONNECTION_LOST
    if result.error_category == UNREACHABLE:
        found = _ENDPOINT.search(result.error_message or "")
        port = int(found["port"]) if found else None
        return unreachable_remediation(port) + UNREACHABLE_MID_ACTION
    if result.error_category in (AUTH_FAILED, TIMEOUT, INTERRUPTED):
        return REMEDIATION[result.error_category]
    return ""


def is_double_hop(result: ActionResult) -> bool:
    """Whether the action failed on the second hop (app.remote.errors.is_second_hop); a bare
    denial counts only for a script in REACHES_PAST_NODE."""
    return is_second_hop(result.error_message, reaches_past_node=result.script in REACHES_PAST_NODE)


def remediation_for(result: ActionResult) -> str:
    """A hint for the usual failure causes; the runner's category text covers the rest."""
    text = (result.error_message or "").lower()
    if "user name or password is incorrect" in text:
        return TASK_REMEDIATION
    if is_double_hop(result):
        return SECOND_HOP_REMEDIATION
    if transport_remediation(result):
        return transport_remediation(result)
    return (
        "Read the error above, correct the cause on the node, then retry; the step detects what "
        "is already done."
    )


def needs_attention(
    summary: str,
    checks: Iterable[Check],
    artifacts: dict[str, Any] | None = None,
) -> Finish:
    """A Finish that waits for a person; failed nodes are those with a failing check."""
    checks = tuple(checks)
    failed = tuple(dict.fromkeys(c.node for c in checks if c.status == "fail" and c.node))
    return Finish("needs_attention", summary, checks, failed, artifacts or {})


def conclude(
    done_summary: str,
    problem_summary: str,
    checks: Iterable[Check],
    artifacts: dict[str, Any] | None = None,
) -> Finish:
    """Done when no check fails, else needs_attention with the failing nodes."""
    checks = tuple(checks)
    if any(c.status == "fail" for c in checks):
        return needs_attention(problem_summary, checks, artifacts)
    return Finish("done", done_summary, checks, (), artifacts or {})


def poll_results(view: RunView, prefix: str) -> list[dict[str, ActionResult]]:
    """Results of the polling phases `<prefix>_1`, `<prefix>_2`, ... that have run, in order."""
    found = []
    while (results := view.phase(f"{prefix}_{len(found) + 1}")) is not None:
        found.append(results)
    return found


def one_action_phase(
    name: str, title: str, action: Action, changes_state: bool = False, wait_before: float = 0.0
) -> Phase:
    """A phase holding a single action (cluster-wide commands run on one node)."""
    return Phase(name, title, (action,), changes_state=changes_state, wait_before=wait_before)


def first_node(view: RunView) -> str:
    """The deployment's first node (it is installed first and takes the license), also when a
    retry runs on fewer nodes."""
    return (view.all_nodes or view.node_names)[0]


def upper_set(names: Iterable[str]) -> set[str]:
    """Computer names compare case-insensitively."""
    return {str(n).upper() for n in names}
