"""The Prerequisites step both guides start with: prove every prerequisite before anything is
changed (the cluster guide runs it as is; the farm guide leaves out the cluster-only checks).

Phases, all read-only: "probe" (connection_probe on every node), "facts" (prereq_node_facts, local
facts, on every node that answered), "domain" (prereq_domain_facts by the operator route on the first
of them that has the ActiveDirectory module), "service" (prereq_sql_facts in a scheduled task running
as the gMSA on every node: its logon proves the node retrieves the password, its SQL sign-in proves
the login), "sql" (prereq_sql_facts by the operator route, only when no task as the gMSA could sign
in), then a Finish with one Check per item. A fix the operator accepted from an earlier attempt
arrives as `view.options.fix` (the id of a check's `fix`) and runs first as phase
"fix"; after a restart the step re-probes ("probe-2", ...) until the node is back with a new boot
time.
"""

from typing import Any, ClassVar

from flask_wtf import FlaskForm

from app import validators
from app.guides.shared import checks
from app.guides.shared.checks import Target
from app.steps import Action, ActionResult, Check, Finish, Phase, RunView, Step
from app.wizard import route
from app.wizard.fields import Rule, SecretField, TextField

FIX_SCRIPTS = {
    "install_feature": "prereq_install_feature",
    "install_ad_module": "prereq_install_feature",
    "set_gmsa_principals": "prereq_set_gmsa_principals",
    "restart": "prereq_restart_node",
}
RESTART_DELAY = 10
REPROBE_WAIT = 20.0
MAX_PROBES = 12


class PrerequisitesForm(FlaskForm):
    """What the checks need to know."""

    ams_version = TextField(
        "Access Manager version to install",
        [Rule(validators.ams_version)],
        description="As printed on the installer, e.g. 2.1.1069.0.",
    )
    gmsa = TextField(
        "Service account (gMSA)",
        [Rule(validators.gmsa)],
        description="DOMAIN\\name$ - the same account runs the service on every node.",
    )
    sql_connection_string = TextField(
        "SQL Server connection string",
        [Rule(validators.sql_connection_string)],
        description="Server=sql01.corp.example.com;Database=AccessManager;Integrated Security=true",
    )
    license_key = SecretField(
        "Enterprise license key",
        [Rule(validators.license_key, optional=True)],
        description="Kept encrypted only while the install is in progress; never shown again.",
    )


class Prerequisites(Step):
    """Read-only checks on every node, the domain and SQL Server; re-run until they pass."""

    key = "prerequisites"
    history_facts = {"ams_version": "ams_version"}
    replay_to_verify = True
    title = "Prerequisites"
    purpose = (
        "Confirm the domain, the nodes and SQL Server are ready before the wizard changes anything."
    )
    guidance = (
        "Every node is checked in parallel over WinRM. Nothing is modified here: failed checks "
        "explain what is wrong and what to do, and you can run the checks again as often as "
        "needed.",
        "A clustered Access Manager needs the Enterprise edition, a group managed service account "
        "that every node may use, a usable KDS root key, and a full SQL Server that every node can "
        "reach. SQL Server Express cannot be shared between nodes.",
    )
    form_class = PrerequisitesForm
    secret_fields = ("license_key",)
    read_only = True

    def preview(self, view: RunView) -> list[Phase]:
        """The three read-only phases, with the parameters the current inputs give."""
        target, _ = checks.parse_target(view.inputs)
        nodes = view.node_names
        phases = [_probe_phase("probe", nodes, 0.0)]
        if target is not None:
            phases += [
                _facts_phase(target, nodes),
                _domain_phase(target, view, nodes[0]),
                _service_phase(target, view, nodes),
            ]
        return phases

    def advance(self, view: RunView) -> Phase | Finish:
        """probe -> facts -> domain -> Finish, with an optional fix phase first."""
        target, problems = checks.parse_target(view.inputs)
        if target is None:
            return Finish("needs_attention", "Some inputs are missing or invalid.", tuple(problems))
        fix = requested_fix(view, target, self.fixes)
        if fix and view.phase("fix") is None:
            return _fix_phase(fix, view)
        probe_name, probe = latest_probe(view)
        if probe is None:
            return _probe_phase("probe", view.node_names, 0.0)
        waiting = nodes_still_restarting(view, fix, probe)
        if waiting and probe_number(probe_name) < MAX_PROBES:
            name = f"probe-{probe_number(probe_name) + 1}"
            return _probe_phase(name, view.node_names, REPROBE_WAIT)
        reachable = [n for n in view.node_names if probe.get(n) and probe[n].ok]
        if reachable and view.phase("facts") is None:
            return _facts_phase(target, reachable)
        facts = {n: r.data for n, r in (view.phase("facts") or {}).items() if r.ok and r.data}
        domain_node = next((n for n in reachable if has_ad_module(facts.get(n))), None)
        if domain_node and view.phase("domain") is None:
            return _domain_phase(target, view, domain_node)
        checked = [n for n in reachable if n in facts]
        if checked and view.phase("service") is None:
            return _service_phase(target, view, checked)
        signed_in = any(
            r.ok and (r.data or {}).get("query_ok") for r in (view.phase("service") or {}).values()
        )
        if checked and not signed_in and view.phase("sql") is None:
            return _sql_phase(target, view, checked[0])
        return self.verdict(view, target, probe, reachable)

    # Hooks for a guide that shares these phases (app/guides/load_balancer/prerequisites.py): the
    # fixes it may offer, and the checks it reads from the same recorded results.
    fixes: ClassVar[frozenset[str]] = frozenset(FIX_SCRIPTS)

    def verdict(
        self, view: RunView, target: Target, probe: dict[str, ActionResult], reachable: list[str]
    ) -> Finish:
        """The Finish the recorded results give."""
        return finish(view, target, probe, reachable)


def _probe_phase(name: str, nodes: list[str], wait: float) -> Phase:
    title = "Connect to every node" if name == "probe" else "Wait for the restarted node"
    actions = tuple(Action(n, "connection_probe", label=f"Connect to {n}") for n in nodes)
    return Phase(name, title, actions, wait_before=wait)


def _facts_phase(target: Target, nodes: list[str]) -> Phase:
    actions = tuple(
        Action(n, "prereq_node_facts", target.node_params(), label=f"Check {n}") for n in nodes
    )
    return Phase("facts", "Check every node", actions)


def has_ad_module(facts: dict | None) -> bool:
    """The node has the ActiveDirectory module (feature RSAT-AD-PowerShell)."""
    return ((facts or {}).get("ad_module") or {}).get("install_state") == "Installed"


def _node_info(view: RunView, name: str):
    return next(n for n in view.nodes if n.name == name)


def _domain_phase(target: Target, view: RunView, node: str) -> Phase:
    params = {"ServiceAccount": target.gmsa, "Domain": view.domain_fqdn}
    action = route.as_operator(
        _node_info(view, node),
        "prereq_domain_facts",
        params,
        label="Check Active Directory",
        timeout=300,
    )
    return Phase("domain", "Check the domain", (action,))


def _service_phase(target: Target, view: RunView, nodes: list[str]) -> Phase:
    actions = tuple(
        route.as_service_account(
            _node_info(view, n),
            "prereq_sql_facts",
            target.gmsa,
            target.sql_params(),
            label=f"Sign in to SQL Server from {n}",
        )
        for n in nodes
    )
    return Phase("service", "Try the service account on every node", actions)


def _sql_phase(target: Target, view: RunView, node: str) -> Phase:
    action = route.as_operator(
        _node_info(view, node),
        "prereq_sql_facts",
        target.sql_params(),
        label="Read the service account's SQL login",
        timeout=300,
    )
    return Phase("sql", "Check SQL Server", (action,))


def _fix_phase(fix: dict, view: RunView) -> Phase:
    def build(node: str) -> Action:
        if fix.get("route") == "operator":
            return route.as_operator(
                _node_info(view, node), fix["script"], dict(fix["params"]), label=fix["label"]
            )
        return Action(
            node, fix["script"], dict(fix["params"]), label=fix["label"], long_running=True
        )

    return Phase("fix", fix["label"], tuple(build(n) for n in fix["nodes"]), changes_state=True)


def probe_number(name: str) -> int:
    """1 for "probe", n for "probe-n"."""
    return int(name.rsplit("-", 1)[1]) if "-" in name else 1


def latest_probe(view: RunView) -> tuple[str, dict[str, ActionResult] | None]:
    """The most recent probe phase that has run, by name."""
    name, found = "probe", None
    for number in range(1, MAX_PROBES + 1):
        candidate = "probe" if number == 1 else f"probe-{number}"
        results = view.phase(candidate)
        if results is None:
            break
        name, found = candidate, results
    return name, found


def nodes_still_restarting(
    view: RunView, fix: dict | None, probe: dict[str, ActionResult]
) -> list[str]:
    """Nodes restarted by the fix that do not answer yet, or answer with the old boot time."""
    if not fix or fix_kind(fix["id"]) != "restart":
        return []
    fixed = view.phase("fix") or {}
    waiting = []
    for node in fix["nodes"]:
        before = (fixed.get(node).data or {}).get("boot_time") if fixed.get(node) else None
        result = probe.get(node)
        if (
            result is None
            or not result.ok
            or (before and (result.data or {}).get("boot_time") == before)
        ):
            waiting.append(node)
    return waiting


# ---------------------------------------------------------------------------------------------
# Offered fixes
# ---------------------------------------------------------------------------------------------


def fix_id(kind: str, nodes: list[str]) -> str:
    """The id an offered fix travels under (a form's radio value, the API's `fix`): its kind and
    the nodes it was offered for, so accepting "restart AMS2" restarts AMS2 and no other node."""
    return f"{kind}:{','.join(nodes)}"


def fix_kind(text: str | None) -> str:
    """The kind of fix an id names ("restart" of "restart:AMS2")."""
    return (text or "").partition(":")[0]


def fix_nodes(text: str | None, view: RunView) -> list[str]:
    """The nodes an id names, as this deployment spells them; unknown names are dropped, and an id
    naming no node (a bare kind, as older clients send) means every targeted node."""
    named = [n for n in (text or "").partition(":")[2].split(",") if n]
    if not named:
        return list(view.node_names)
    known = {n.upper(): n for n in view.node_names}
    return [known[n.upper()] for n in named if n.upper() in known]


def feature_fix(nodes: list[str]) -> dict:
    """Install Failover-Clustering on the nodes that lack it."""
    return {
        "id": fix_id("install_feature", nodes),
        "script": FIX_SCRIPTS["install_feature"],
        "label": f"Install Failover Clustering on {', '.join(nodes)}",
        "nodes": list(nodes),
        "params": {},
    }


def ad_module_fix(node: str) -> dict:
    """Install the ActiveDirectory module on the node that runs the domain checks."""
    return {
        "id": fix_id("install_ad_module", [node]),
        "script": FIX_SCRIPTS["install_ad_module"],
        "label": f"Install the Active Directory PowerShell module (RSAT-AD-PowerShell) on {node}",
        "nodes": [node],
        "params": {"FeatureName": "RSAT-AD-PowerShell"},
    }


def restart_fix(nodes: list[str]) -> dict:
    """Restart the nodes, then wait for them to come back."""
    return {
        "id": fix_id("restart", nodes),
        "script": FIX_SCRIPTS["restart"],
        "label": f"Restart {', '.join(nodes)} and wait for it to come back",
        "nodes": list(nodes),
        "params": {"DelaySeconds": RESTART_DELAY},
    }


def requested_fix(
    view: RunView, target: Target, allowed: frozenset[str] = frozenset(FIX_SCRIPTS)
) -> dict | None:
    """The fix the operator accepted, rebuilt from trusted values; None if absent or invalid."""
    kind = fix_kind(view.options.fix)
    if kind not in FIX_SCRIPTS or kind not in allowed:
        return None
    nodes = fix_nodes(view.options.fix, view)
    if not nodes:
        return None
    if kind == "install_feature":
        return feature_fix(nodes)
    if kind == "install_ad_module":
        return ad_module_fix(nodes[0])
    if kind == "restart":
        return restart_fix(nodes)
    # Whatever the request carried, the fix only ever adds this deployment's nodes; the script
    # reads the current list on the node and keeps every principal already there.
    fix = checks.principals_fix(target, None, view.node_names, nodes[0])
    fix["params"]["Domain"] = view.domain_fqdn
    return fix


# ---------------------------------------------------------------------------------------------
# The verdict
# ---------------------------------------------------------------------------------------------


def finish(
    view: RunView,
    target: Target,
    probe: dict[str, ActionResult],
    reachable: list[str],
    *,
    per_node_checks=None,
    version_check=checks.version_check,
    count_check=checks.node_count_check,
) -> Finish:
    """Every check, in the order the operator reads them, and the outcome.

    The keywords let another guide read the same results with its own per-node, version and node
    count checks (the load-balancer guide has no Failover Clustering feature and no quorum)."""
    facts_results = view.phase("facts") or {}
    per_node = {n: r.data or {} for n, r in facts_results.items() if r.ok}
    found: list[Check] = [checks.winrm_check(n, probe.get(n)) for n in view.node_names]
    found += [_facts_failure(n, r) for n, r in facts_results.items() if not r.ok]
    found += (per_node_checks or node_checks)(view, target, per_node)
    found += ad_module_checks(view, per_node, reachable)
    found += domain_checks(view, target, reachable)
    service = view.phase("service") or {}
    for node in view.node_names:
        found += checks.service_account_checks(node, target, service.get(node))
    readings = [r.data for r in service.values() if r.ok and isinstance(r.data, dict)]
    operator = next(iter((view.phase("sql") or {}).values()), None)
    if operator is not None and operator.ok and isinstance(operator.data, dict):
        readings.append(operator.data)
    elif operator is not None:
        readings.append({"error": operator.error_message})
    found += checks.sql_checks(target, readings)
    found += [version_check(target)]
    found += checks.installed_checks(
        target, {n: checks.installed_version(f) for n, f in per_node.items()}
    )
    found += [checks.license_check(view.secret_names), count_check(len(view.nodes))]
    return _outcome(found, per_node)


def _facts_failure(node: str, result: ActionResult) -> Check:
    return Check(
        f"facts:{node}",
        f"Checks on {node}",
        "fail",
        f"{result.error_category or 'error'}: {result.error_message or 'no detail'}",
        "The node answered the connection test but the checks failed; read the error, "
        "fix the cause and run the checks again.",
        node=node,
    )


def node_checks(view: RunView, target: Target, per_node: dict[str, dict]) -> list[Check]:
    """Domain, OS, feature, restart, gMSA test and SQL reachability for each node."""
    missing = [
        n
        for n, f in per_node.items()
        if (f.get("feature") or {}).get("install_state") not in ("Installed", "InstallPending")
    ]
    install = feature_fix(missing) if missing else None
    found: list[Check] = []
    for node, facts in per_node.items():
        found += [
            checks.domain_check(node, facts, view.domain_fqdn),
            checks.os_check(node, facts),
            checks.feature_check(node, facts, install),
            checks.reboot_check(node, facts, restart_fix([node])),
            checks.sql_tcp_check(node, target, facts),
        ]
    return found


def ad_module_checks(view: RunView, per_node: dict[str, dict], reachable: list[str]) -> list[Check]:
    """The domain checks need the ActiveDirectory module on one node; offer to install it."""
    if not per_node or any(has_ad_module(f) for f in per_node.values()):
        return []
    node = next(n for n in reachable if n in per_node)
    return [
        Check(
            "ad_module",
            "Active Directory PowerShell module",
            "fail",
            f"No node has the Active Directory module: feature RSAT-AD-PowerShell is "
            f"{(per_node[node].get('ad_module') or {}).get('install_state') or 'not installed'} "
            f"on {node}. Installing Failover Clustering does not add it.",
            f"The domain checks (KDS root key, service account, allowed nodes) need it on one "
            f"node. The wizard can install it on {node} (Install-WindowsFeature "
            "RSAT-AD-PowerShell; no restart needed).",
            node=node,
            fix=ad_module_fix(node),
        )
    ]


def domain_checks(view: RunView, target: Target, reachable: list[str]) -> list[Check]:
    """Domain controllers, KDS root key and the gMSA, from the domain phase."""
    result = next(iter((view.phase("domain") or {}).values()), None)
    if result is None:
        return []
    if not result.ok:
        return [
            Check(
                "domain_facts",
                "Active Directory",
                "fail",
                f"{result.error_category or 'error'}: {result.error_message or 'no detail'}",
                "The domain checks could not run on the first node; fix the cause and run "
                "the checks again.",
            )
        ]
    domain = result.data or {}
    module_error = (domain.get("errors") or {}).get("module")
    if module_error:
        return [
            Check(
                "ad_module",
                "Active Directory PowerShell module",
                "fail",
                f"On {result.node}: {module_error}",
                "Install RSAT-AD-PowerShell on the node; the wizard can do it.",
                node=result.node,
                fix=ad_module_fix(result.node),
            )
        ]
    gmsa = domain.get("gmsa") or {}
    fix = None
    if gmsa.get("found"):
        fix = checks.principals_fix(target, gmsa, view.node_names, result.node)
        fix["params"]["Domain"] = view.domain_fqdn
    found = [checks.dc_check(domain), checks.kds_check(domain)]
    found += checks.gmsa_checks(target, domain, view.node_names, fix)
    reported = str((domain.get("domain") or {}).get("dns_root") or "")
    if reported and reported.lower() != view.domain_fqdn.lower():
        found.append(
            Check(
                "domain_name",
                "Deployment domain",
                "fail",
                f"The first node's domain is {reported}; the deployment says {view.domain_fqdn}.",
                "Correct the deployment's domain.",
            )
        )
    return found


def _outcome(found: list[Check], per_node: dict[str, dict]) -> Finish:
    failed = [c for c in found if c.status == "fail"]
    warned = [c for c in found if c.status == "warn"]
    failed_nodes = tuple(dict.fromkeys(c.node for c in failed if c.node))
    artifacts: dict[str, Any] = {
        "installed_versions": {n: checks.installed_version(f) for n, f in per_node.items()},
    }
    passed = len([c for c in found if c.status == "pass"])
    if failed:
        names = "; ".join(c.title for c in failed[:5]) + ("; ..." if len(failed) > 5 else "")
        summary = f"{len(failed)} check(s) failed: {names}. {passed} passed, {len(warned)} warned."
        return Finish("needs_attention", summary, tuple(found), failed_nodes, artifacts)
    unverified = len([c for c in warned if c.evidence.startswith("Not verified")])
    summary = f"All prerequisites are met: {passed} passed, {len(warned)} warning(s)."
    if unverified:
        summary = (
            f"No check failed, but {unverified} item(s) could not be verified from the nodes; "
            f"read the warnings before continuing. {passed} passed."
        )
    return Finish("done", summary, tuple(found), (), artifacts)
