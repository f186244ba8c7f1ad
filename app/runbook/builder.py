"""Build one standalone PowerShell runbook from a deployment's plan.

Layout: a param() block holding the deployment's values as defaults; Start-Transcript; credentials and
step secrets prompted for (Get-Credential, Read-Host -AsSecureString; never written into the file);
every vetted script used by the plan as `function Invoke-Amsw_<name> {` + the exact file text + `}`;
small helpers that run such a function on a node over PowerShell remoting; then each step's phases in
order, each state-changing phase asked for (or -Force) and followed by its verification phase.

Action parameters equal to one of the deployment's values refer to that runbook parameter, so changing
a parameter changes every action that used it; values the step derived (an FQDN built from a name and
the domain, say) are written as literals.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from app.api.formjson import FieldSpec, unbound_fields
from app.context import all_inputs, guide_for, run_view
from app.execution import vault
from app.masking import is_secret_name, mask
from app.models import Deployment
from app.remote import scripts
from app.runbook.quote import identifier, literal, quote
from app.steps import Phase, Step
from app.wizard import route

PRELUDE = (Path(__file__).parent / "prelude.ps1").read_text(encoding="utf-8")
CREDENTIAL_ENTRIES = {
    vault.WINRM_PASSWORD: "$AmswCredential.Password",
    "winrm_username": "$AmswCredential.UserName",
}
FUNCTION_PREFIX = "Invoke-Amsw_"


@dataclass(frozen=True)
class Param:
    """One top-level runbook parameter."""

    name: str
    kind: str
    value: Any


@dataclass(frozen=True)
class Planned:
    """A step and the phases its preview gives."""

    number: int
    step: Step
    phases: tuple[Phase, ...]
    missing_inputs: bool


def function_name(script: str) -> str:
    """The runbook function that carries a vetted script."""
    return FUNCTION_PREFIX + identifier(script)


def pascal(key: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in key.split("_") if part)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "[bool]"
    if isinstance(value, int):
        return "[int]"
    if isinstance(value, list):
        return "[string[]]"
    return "[string]"


def collect_params(deployment: Deployment, steps: list[Step]) -> list[Param]:
    """Deployment, node and step-input parameters, in the order they are declared."""
    params = [Param("DeploymentName", "[string]", deployment.name)]
    params.append(Param("Domain", "[string]", deployment.domain_fqdn))
    for i, node in enumerate(deployment.active_nodes, start=1):
        params += [
            Param(f"Node{i}Name", "[string]", node.name),
            Param(f"Node{i}Host", "[string]", node.host),
            Param(f"Node{i}Port", "[int]", node.port),
            Param(f"Node{i}Transport", "[string]", node.transport),
            Param(f"Node{i}Auth", "[string]", node.auth),
            Param(f"Node{i}ValidateCertificate", "[bool]", bool(node.cert_validation)),
        ]
    saved = all_inputs(deployment)
    for step in steps:
        for field, value in (saved.get(step.key) or {}).items():
            if is_secret_name(field, step.secret_fields) or field == "csrf_token":
                continue
            if isinstance(value, dict):
                continue
            name = identifier(f"{pascal(step.key)}_{pascal(field)}")
            params.append(Param(name, _kind(value), mask(value)))
    return params


def reference_map(params: list[Param]) -> dict[Any, str]:
    """Value -> `$Parameter` for values worth linking (node names first, then the rest)."""
    refs: dict[Any, str] = {}
    ordered = sorted(params, key=lambda p: 0 if p.name.endswith("Name") and "Node" in p.name else 1)
    for p in ordered:
        value = p.value
        if isinstance(value, bool) or value in ("", None) or p.name == "DeploymentName":
            continue
        if isinstance(value, int) and value in (0, 1):
            continue
        if isinstance(value, str | int):
            refs.setdefault((type(value), value), f"${p.name}")
    return refs


def expression(value: Any, refs: dict[Any, str]) -> str:
    """A parameter value as a reference to a runbook parameter where one matches, else a literal."""
    if isinstance(value, str | int) and not isinstance(value, bool):
        ref = refs.get((type(value), value))
        if ref:
            return ref
    if isinstance(value, list):
        return "@(" + ", ".join(expression(v, refs) for v in value) + ")"
    if isinstance(value, dict):
        items = "; ".join(
            f"{quote(identifier(k))} = {expression(v, refs)}" for k, v in value.items()
        )
        return "@{" + items + "}"
    return literal(value)


def scripts_of(action) -> list[str]:
    """The vetted scripts an action needs as runbook functions: its own, and a task's payload."""
    inner = route.inner_script(action.script, action.params)
    return [action.script] if inner == action.script else [action.script, inner]


def secret_expression(entry: str) -> str:
    """Where a secret comes from at run time (the credential prompt or a Read-Host prompt)."""
    return CREDENTIAL_ENTRIES.get(entry) or f"$AmswSecrets[{quote(entry)}]"


def plan_steps(deployment: Deployment, steps: list[Step]) -> list[Planned]:
    """Each runnable step's preview, assuming every secret will be entered at run time."""
    guide = guide_for(deployment)
    saved = all_inputs(deployment)
    planned = []
    for step in steps:
        held = frozenset(step.secret_fields) | {vault.WINRM_PASSWORD}
        phases = tuple(step.preview(run_view(deployment, step.key, held)))
        missing = step.form_class is not None and not saved.get(step.key)
        planned.append(Planned(guide.index(step.key) + 1, step, phases, missing))
    return planned


def _action_line(action, refs: dict[Any, str]) -> str:
    params = mask(dict(action.params))  # masked as the parameters above are, so they match
    pairs = [f"{quote(identifier(k))} = {expression(v, refs)}" for k, v in params.items()]
    pairs += [f"{quote(identifier(k))} = {secret_expression(e)}" for k, e in action.secrets.items()]
    if action.script == route.TASK_SCRIPT:  # the payload's text, from its function in this file
        inner = quote(identifier(route.inner_script(action.script, action.params)))
        pairs.append(f"'ScriptText' = (Get-AmswScriptText -Script {inner})")
    node = refs.get((str, action.node)) or quote(action.node)
    label = quote(action.label or f"{action.script} on {action.node}")
    script = quote(identifier(action.script))
    parameters = "; ".join(pairs)
    return (
        f"@{{ Node = {node}; Script = {script}; Label = {label}; Parameters = @{{{parameters}}} }}"
    )


def _phase_lines(phase: Phase, refs: dict[Any, str], indent: str, title: str) -> list[str]:
    lines = [f"{indent}$null = Invoke-AmswPhase -Title {quote(title)} -Actions @("]
    lines += [f"{indent}    {_action_line(a, refs)}" for a in phase.actions]
    lines.append(f"{indent})")
    return lines


def verification_for(phases: tuple[Phase, ...], index: int) -> tuple[Phase | None, bool]:
    """(the read-only phase that verifies phases[index], whether it directly follows it)."""
    following = phases[index + 1] if index + 1 < len(phases) else None
    if following is not None and not following.changes_state:
        return following, True
    nodes = {a.node for a in phases[index].actions}
    read_only = [p for p in phases if not p.changes_state and p.actions]
    same_nodes = [p for p in read_only if nodes <= {a.node for a in p.actions}]
    chosen = (same_nodes or read_only or [None])[-1 if same_nodes else 0]
    return chosen, False


def step_lines(planned: Planned, refs: dict[Any, str]) -> list[str]:
    """One step: read-only phases run directly, each change asked for and then verified."""
    step = planned.step
    lines = [
        "",
        f"# ---- Step {planned.number}: {step.key} " + "-" * max(4, 60 - len(step.key)),
        f"if ($Steps -contains {quote(step.key)}) {{",
        f"    Write-AmswStep -Number {planned.number} -Title {quote(step.title)}",
    ]
    if planned.missing_inputs:
        warning = quote(f"{step.title}: no inputs were saved in the wizard; values may be empty.")
        lines.append(f"    Write-Warning {warning}")
    consumed: set[int] = set()
    for i, phase in enumerate(planned.phases):
        if i in consumed or not phase.actions:
            continue
        if not phase.changes_state:
            lines += _phase_lines(phase, refs, "    ", phase.title)
            continue
        check, adjacent = verification_for(planned.phases, i)
        if adjacent:
            consumed.add(i + 1)
        lines.append(f"    if (Confirm-AmswChange -Title {quote(phase.title)}) {{")
        lines += _phase_lines(phase, refs, "        ", phase.title)
        if check is not None:
            lines += _phase_lines(check, refs, "        ", f"Verify: {check.title}")
        else:
            lines.append("        Read-Host -Prompt 'Verify the change by hand, then press Enter'")
        lines.append("    }")
    lines.append("}")
    return lines


def _param_block(params: list[Param], step_keys: list[str]) -> list[str]:
    lines = ["[CmdletBinding()]", "param("]
    for p in params:
        lines.append(f"    {p.kind}${identifier(p.name)} = {literal(p.value)},")
    keys = ", ".join(quote(k) for k in step_keys)
    lines += [
        f"    [ValidateSet({keys})]",
        f"    [string[]]$Steps = @({keys}),",
        "    [string]$TranscriptPath = '',",
        "    [switch]$Force",
        ")",
    ]
    return lines


def _secret_prompts(planned: list[Planned]) -> list[str]:
    entries: dict[str, str] = {}
    for item in planned:
        titles = {}
        if item.step.form_class is not None:
            titles = {n: str(FieldSpec(u).label) for n, u in unbound_fields(item.step.form_class)}
        for phase in item.phases:
            for action in phase.actions:
                for entry in action.secrets.values():
                    if entry not in CREDENTIAL_ENTRIES:
                        entries.setdefault(entry, titles.get(entry, entry))
    lines = [
        "$AmswCredential = Get-Credential -Message 'WinRM credentials for the cluster nodes (DOMAIN\\user)'",
        "$AmswSecrets = @{}",
    ]
    for entry, title in entries.items():
        lines.append(
            f"$AmswSecrets[{quote(entry)}] = Read-Host -AsSecureString -Prompt {quote(title)}"
        )
    return lines


def _node_table(deployment: Deployment) -> list[str]:
    lines = ["$AmswNodes = [ordered]@{}"]
    for i, _ in enumerate(deployment.active_nodes, start=1):
        lines.append(
            f"$AmswNodes[$Node{i}Name] = @{{ Host = $Node{i}Host; Port = $Node{i}Port; "
            f"Transport = $Node{i}Transport; Auth = $Node{i}Auth; "
            f"ValidateCertificate = $Node{i}ValidateCertificate }}"
        )
    return lines


def script_function(name: str) -> str:
    """`function Invoke-Amsw_<name> {` newline, the vetted file's exact text, newline, `}`."""
    return f"function {function_name(name)} {{\n{scripts.load(name)}\n}}\n"


def build(deployment: Deployment, steps: list[Step], generated_at: datetime) -> str:
    """The runbook text for `steps` (in guide order) of `deployment`."""
    runnable = [s for s in steps if s.runnable]
    planned = plan_steps(deployment, runnable)
    params = collect_params(deployment, runnable)
    refs = reference_map(params)
    used = sorted(
        {n for p in planned for ph in p.phases for a in ph.actions for n in scripts_of(a)}
    )
    header = [
        f"# AMS Cluster Wizard runbook for deployment {deployment.id}, guide "
        f"{deployment.guide_key} {deployment.guide_version}.",
        f"# Generated {generated_at.strftime('%Y-%m-%dT%H:%M:%SZ')}. Steps: "
        + ", ".join(identifier(s.key) for s in runnable)
        + ".",
        "# Each function Invoke-Amsw_<name> is the wizard's vetted script app/scripts/<name>.ps1, unchanged.",
        "# Secrets are prompted for when it runs; none are stored in this file.",
        "# Run it from a management host that can reach every node over WinRM.",
    ]
    body = [
        *header,
        *_param_block(params, [s.key for s in runnable]),
        "",
        "if (-not $TranscriptPath) {",
        "    $TranscriptPath = Join-Path -Path (Get-Location) -ChildPath "
        f"('amsw-runbook-{deployment.id}-{{0:yyyyMMdd-HHmmss}}.log' -f (Get-Date))",
        "}",
        "Start-Transcript -Path $TranscriptPath -Append | Out-Null",
        "$ErrorActionPreference = 'Stop'",
        "",
        *(script_function(name) for name in used),
        PRELUDE,
        "try {",
        *(
            "    " + line if line else ""
            for line in [*_secret_prompts(planned), *_node_table(deployment)]
        ),
        *("    " + line if line else "" for item in planned for line in step_lines(item, refs)),
        "    Write-Host ''",
        "    Write-Host 'Runbook finished.'",
        "}",
        "finally {",
        "    Stop-Transcript | Out-Null",
        "}",
        "",
    ]
    return "\n".join(body)
