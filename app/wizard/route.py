"""The one route for scripts that need the operator's identity on another machine.

A WinRM session authenticated by NTLM or Kerberos holds no credentials it can pass on (the second
hop): Active Directory, SQL Server and the other cluster nodes see ANONYMOUS LOGON. Such a script
runs directly only when the node's session is CredSSP; otherwise it runs inside `task_run`, a one-shot
scheduled task that logs on with the operator's password (or as the service account) and so holds
network credentials. Steps build these actions here and never choose a transport themselves.
"""

from __future__ import annotations

from typing import Any

from app.steps import Action, NodeInfo

TASK_SCRIPT = "task_run"
# The task logs on with the operator's WinRM credentials, read from the vault by the worker.
TASK_SECRETS = {"TaskUser": "winrm_username", "TaskPassword": "winrm_password"}
# Seconds the session waits beyond the task's own limit (registration, polling, clean-up).
TASK_MARGIN = 120


def delegates(node: NodeInfo) -> bool:
    """Whether the node's own session can reach other machines with the operator's identity."""
    return node.auth == "credssp"


def as_operator(
    node: NodeInfo,
    script: str,
    params: dict[str, Any] | None = None,
    *,
    label: str,
    timeout: int = 900,
    long_running: bool = False,
) -> Action:
    """Run `script` with the operator's identity on other machines: direct over CredSSP, else in
    a scheduled task on the node."""
    params = dict(params or {})
    if delegates(node):
        return Action(
            node.name, script, params, label=label, timeout=timeout, long_running=long_running
        )
    return Action(
        node.name,
        TASK_SCRIPT,
        {"ScriptName": script, "Parameters": params, "TimeoutSeconds": timeout},
        secrets=dict(TASK_SECRETS),
        label=f"{label} (scheduled task)",
        timeout=timeout + TASK_MARGIN,
        long_running=True,
    )


def as_service_account(
    node: NodeInfo,
    script: str,
    account: str,
    params: dict[str, Any] | None = None,
    *,
    label: str,
    timeout: int = 300,
) -> Action:
    """Run `script` on the node as the group managed service account, in a scheduled task: the
    logon itself proves the node may retrieve the account's password."""
    return Action(
        node.name,
        TASK_SCRIPT,
        {
            "ScriptName": script,
            "Parameters": dict(params or {}),
            "ServiceAccount": account,
            "TimeoutSeconds": timeout,
        },
        label=f"{label} (scheduled task as {account})",
        timeout=timeout + TASK_MARGIN,
        long_running=True,
    )


def inner_script(action_script: str, params: dict[str, Any]) -> str:
    """The script an action really runs: the task's payload, or the action's own script."""
    if action_script == TASK_SCRIPT:
        return str(params.get("ScriptName") or action_script)
    return action_script
