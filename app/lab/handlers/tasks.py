"""Lab model of task_run.ps1: a vetted script run by a one-shot scheduled task on the node.

The task logs on locally with a password (the operator's, or a gMSA's retrieved from AD), so the
script it runs holds network credentials: rule task_logon. What it writes reaches the caller only
through its result file (no live progress); the error texts are the ones task_run.ps1 throws.
"""

from __future__ import annotations

import time

from app.lab import scenarios
from app.lab.context import ScriptContext, ScriptFailure
from app.lab.handlers import handler
from app.lab.handlers.prerequisites import param

DEFAULT_BATCH_LOGON = scenarios.DEFAULT_BATCH_LOGON

STORED_PASSWORDS_REFUSED = (
    'This node does not allow a scheduled task to store a password (policy "Network access: Do '
    'not allow storage of passwords and credentials for network authentication", 0x80070520). '
    "Use CredSSP for this deployment, or ask for the policy to be relaxed on {node}."
)
WRONG_CREDENTIALS = (
    "The scheduled task could not log on as {user}: the user name or password is incorrect "
    "(0x8007052E)."
)
NO_BATCH_LOGON = (
    '{user} may not "Log on as a batch job" on {node} (0x80070569), so the scheduled task could '
    "not start. Grant the right (Local Security Policy, User Rights Assignment) or use CredSSP."
)
GMSA_LOGON_FAILED = (
    "The scheduled task could not log on as {user} on {node} (0x8007052E): wrong password, or a "
    "service account whose password this node may not retrieve."
)
TIMED_OUT = (
    "{script} did not finish within {seconds} seconds in the scheduled task and was stopped; its "
    "work may be partly done. Look at the node, then retry: the step detects what is already there."
)
FAILED = "{script} failed in the scheduled task (running as {user}): {error}"
NO_ACCOUNT = "The scheduled task needs the operator's user name and password, or a service account to run as."


def batch_logon_holders(node: dict) -> list[str]:
    """Principals holding SeBatchLogonRight on the node."""
    return list(node.get("policy", {}).get("batch_logon", DEFAULT_BATCH_LOGON))


def _may_batch_logon(state: dict, node: dict, user: str, is_admin: bool) -> bool:
    holders = {h.upper() for h in batch_logon_holders(node)}
    if is_admin and "BUILTIN\\ADMINISTRATORS" in holders:
        return True
    sam = user.split("\\", 1)[-1].upper()
    return user.upper() in holders or f"{state['domain']['netbios']}\\{sam}".upper() in holders


def _gmsa_logon_ok(state: dict, node: dict, account: str) -> bool:
    """The node may retrieve the gMSA password: account enabled, node allowed, usable KDS key."""
    return scenarios.gmsa_retrievable(state, node, account)


def _logon(ctx: ScriptContext, state: dict, node: dict) -> str:
    """Register the task and log it on, as Task Scheduler would; the account it runs as."""
    service_account = str(param(ctx, "ServiceAccount", "") or "")
    user = str(param(ctx, "TaskUser", "") or "")
    password = param(ctx, "TaskPassword")
    if service_account:
        if not _may_batch_logon(state, node, service_account, is_admin=False):
            raise ScriptFailure(NO_BATCH_LOGON.format(user=service_account, node=ctx.node))
        if not _gmsa_logon_ok(state, node, service_account):
            raise ScriptFailure(GMSA_LOGON_FAILED.format(user=service_account, node=ctx.node))
        return service_account
    if not user or not password:
        raise ScriptFailure(NO_ACCOUNT)
    if not node.get("policy", {}).get("stored_passwords_allowed", True):
        raise ScriptFailure(STORED_PASSWORDS_REFUSED.format(node=ctx.node))
    checker = getattr(ctx.dispatcher, "check_password", None)
    if checker is not None and not checker(user, str(password)):
        raise ScriptFailure(WRONG_CREDENTIALS.format(user=user))
    if not _may_batch_logon(state, node, user, is_admin=True):
        raise ScriptFailure(NO_BATCH_LOGON.format(user=user, node=ctx.node))
    return user


@handler("task_run")
def task_run(ctx: ScriptContext) -> None:
    """Register, start and poll the task; re-emit what the script wrote to its result file."""
    name = str(param(ctx, "ScriptName", ""))
    timeout = int(param(ctx, "TimeoutSeconds", 900))
    state = ctx.store.read()
    node = scenarios.find_node(state, ctx.node)
    user = _logon(ctx, state, node)
    ctx.progress(f"{name} (scheduled task as {user})", "Running", 5)
    started = time.monotonic()
    task = ctx.dispatcher.run_in_task(
        ctx, str(param(ctx, "ScriptText", "")), param(ctx, "Parameters", {}) or {}, user
    )
    if time.monotonic() - started > timeout:
        raise ScriptFailure(TIMED_OUT.format(script=name, seconds=timeout))
    for warning in task.warnings:
        ctx.warning(warning)
    if task.failure is not None:
        raise ScriptFailure(FAILED.format(script=name, user=user, error=task.failure))
    for value in task.outputs:
        ctx.output(value)
