"""Step 2: validate the nodes and create (or adopt) the failover cluster.

detect (cluster_detect on every node) -> adopt, or stop on a foreign cluster -> validate
(Test-Cluster) -> create (New-Cluster) -> verify (detect again). Test-Cluster and New-Cluster reach the
other nodes and Active Directory, so both take the operator route (app.wizard.route): CredSSP when the
first node's session is CredSSP, else a scheduled task on it.
"""

from typing import Any

from flask_wtf import FlaskForm
from wtforms import BooleanField

from app import validators
from app.guides.cluster import addresses
from app.guides.cluster import validation as verdict
from app.guides.shared.flow import (
    conclude,
    failure_checks,
    failures,
    needs_attention,
    one_action_phase,
    outputs,
    point_to_address_field,
    upper_set,
)
from app.steps import Action, ActionResult, Check, Finish, Phase, RunView, Step
from app.wizard import route
from app.wizard.fields import Rule, TextField

CREATE_TIMEOUT = 1200
CREDSSP_REMINDER = (
    "CredSSP was used to create the cluster. When the installation is finished, disable it on "
    "every node where you enabled it: Disable-WSManCredSSP -Role Server."
)


class BaseClusterForm(FlaskForm):
    """Name and address of the cluster itself (not of the Access Manager role)."""

    cluster_name = TextField(
        "Cluster name",
        [Rule(lambda v: validators.netbios_name(v, "Cluster name"))],
        description="The cluster's computer object in AD: at most 15 characters.",
    )
    cluster_address = TextField(
        "Cluster static IP address",
        [Rule(lambda v: validators.static_address(v, what="Cluster address"))],
    )
    run_validation = BooleanField("Run cluster validation (Test-Cluster) first", default=True)


class BaseCluster(Step):
    """Test-Cluster, then New-Cluster -NoStorage, or adopt a cluster these nodes already form."""

    key = "base_cluster"
    history_facts = {"name": "cluster_name"}
    replay_to_verify = True
    title = "Base cluster"
    purpose = (
        "Validate the nodes and form the Windows failover cluster that will host Access Manager."
    )
    guidance = (
        "Cluster validation runs first and its report is kept with this deployment. If the nodes "
        "already form a cluster, it is adopted as it is rather than created again.",
        "Validating and creating a cluster reach the other nodes and Active Directory, which a "
        "WinRM session cannot do with Kerberos or NTLM credentials (the second hop). The wizard "
        "runs both in a one-shot scheduled task on the first node that logs on with your "
        "credentials, or directly when that node's connection uses CredSSP.",
        "The account needs local administrator rights on every node and permission to create "
        "computer objects in the nodes' OU (or a pre-staged cluster name object).",
    )
    form_class = BaseClusterForm

    def cross_check(self, deployment, data: dict, probed) -> dict[str, str]:
        return addresses.cross_check(deployment, data, probed)

    def preview(self, view: RunView) -> list[Phase]:
        phases = [self._detect(view, "detect")]
        if view.inputs.get("run_validation", True):
            phases.append(self._validate(view))
        return [*phases, self._create(view), self._detect(view, "verify")]

    def advance(self, view: RunView) -> Phase | Finish:
        detect = view.phase("detect")
        if detect is None:
            return self._detect(view, "detect")
        if failures(detect):
            return needs_attention(
                "The wizard could not read the cluster state of every node.",
                failure_checks(detect, "detect", "Reading the cluster state"),
            )
        existing = _existing_cluster(view, outputs(detect))
        if existing is not None:
            return existing
        validation = view.phase("validate")
        if view.inputs.get("run_validation", True):
            if validation is None:
                return self._validate(view)
            stop = _validation_stop(view, validation)
            if stop is not None:
                return stop
        create = view.phase("create")
        if create is None:
            return self._create(view)
        if failures(create):
            return needs_attention(
                f"Creating cluster {_name(view)} failed.",
                point_to_address_field(
                    failure_checks(create, "create", "Creating the cluster"),
                    "cluster_address",
                    "Cluster static IP address",
                ),
                _artifacts(view, _method(view), validation),
            )
        verify = view.phase("verify")
        if verify is None:
            return self._detect(view, "verify")
        return _conclude(view, verify, _method(view), validation)

    def _detect(self, view: RunView, name: str) -> Phase:
        title = "Detect an existing cluster" if name == "detect" else "Verify the new cluster"
        actions = tuple(
            Action(node=n, script="cluster_detect", label=f"Cluster membership of {n}")
            for n in view.node_names
        )
        return Phase(name, title, actions)

    def _validate(self, view: RunView) -> Phase:
        action = route.as_operator(
            view.first_node,
            "cluster_validate",
            {"Node": view.node_names},
            label="Test-Cluster (inventory, network, system configuration)",
            timeout=1800,
        )
        return one_action_phase("validate", "Validate the nodes", action)

    def _create(self, view: RunView) -> Phase:
        params = {
            "Name": _name(view),
            "Node": view.node_names,
            "StaticAddress": view.inputs.get("cluster_address", ""),
        }
        action = route.as_operator(
            view.first_node, "cluster_create", params, label="New-Cluster", timeout=CREATE_TIMEOUT
        )
        return one_action_phase("create", "Create the cluster", action, changes_state=True)


validation_reading = verdict.reading


def _name(view: RunView) -> str:
    return str(view.inputs.get("cluster_name", "")).upper()


def _method(view: RunView) -> str:
    return "credssp" if route.delegates(view.first_node) else "scheduled_task"


def _existing_cluster(view: RunView, detected: dict[str, Any]) -> Finish | None:
    """Adopt the cluster these nodes already form, or stop on one that is not the one asked."""
    missing = [n for n, d in detected.items() if not d.get("feature_installed")]
    if missing:
        return needs_attention(
            "The Failover Clustering feature is missing on some nodes.",
            [
                Check(
                    key=f"feature:{n}",
                    title=f"Failover Clustering is not installed on {n}",
                    status="fail",
                    evidence="Get-WindowsFeature Failover-Clustering: not installed.",
                    remediation="Run the Prerequisites step again (it installs the feature), "
                    "or run Install-WindowsFeature Failover-Clustering -IncludeManagementTools.",
                    node=n,
                )
                for n in missing
            ],
        )
    members = {n: d for n, d in detected.items() if d.get("exists")}
    if not members:
        return None
    wanted = upper_set(view.node_names)
    if len(members) == len(view.node_names) and all(
        str(d.get("name", "")).upper() == _name(view)
        and upper_set(m["name"] for m in d.get("nodes", [])) == wanted
        for d in members.values()
    ):
        return _conclude(view, view.phase("detect"), "adopted", None)
    return needs_attention(
        "Some nodes already belong to a cluster that is not the one requested.",
        [_foreign_cluster_check(view, n, d) for n, d in members.items()],
    )


def _foreign_cluster_check(view: RunView, node: str, data: dict) -> Check:
    names = sorted(m["name"] for m in data.get("nodes", []))
    same_name = str(data.get("name", "")).upper() == _name(view)
    if same_name:
        extra = sorted(upper_set(names) - upper_set(view.node_names))
        absent = sorted(upper_set(view.node_names) - upper_set(names))
        remediation = (
            f"Cluster {data['name']} has different members than this deployment. "
            + (
                f"Add the missing nodes (Add-ClusterNode -Name {','.join(absent)}). "
                if absent
                else ""
            )
            + (f"Remove or exclude the extra nodes ({', '.join(extra)}). " if extra else "")
            + "Then retry: the wizard adopts the cluster once its members match."
        )
    else:
        remediation = (
            f"Use the existing cluster's name ({data.get('name')}) and members in this deployment, "
            "or take the node out of that cluster (Remove-ClusterNode) before retrying. The wizard "
            "never changes a cluster it was not asked to build."
        )
    return Check(
        key=f"foreign_cluster:{node}",
        title=f"{node} already belongs to cluster {data.get('name')}",
        status="fail",
        evidence=f"Members: {', '.join(names)}; address {data.get('address') or 'unknown'}.",
        remediation=remediation,
        node=node,
    )


def _validation_stop(view: RunView, results: dict[str, ActionResult]) -> Finish | None:
    """Test-Cluster failures stop the step (the report is kept); warnings only show."""
    if failures(results):
        return needs_attention(
            "Cluster validation could not run.",
            failure_checks(results, "validate", "Test-Cluster"),
        )
    data = verdict.reading(outputs(results).get(view.first_node.name, {}))
    if data.get("outcome") != "failed":
        return None
    return needs_attention(
        "Cluster validation reported failures; the cluster was not created.",
        _validation_checks(data),
        {"test_cluster_report": _report(data)},
    )


def _validation_checks(data: dict) -> list[Check]:
    checks = [
        Check(
            key=f"validation:{i}",
            title=issue.get("test", "Validation test"),
            status="fail" if issue.get("severity") == "failure" else "warn",
            evidence=issue.get("message", ""),
            remediation="Open the validation report kept with this deployment for the details, "
            "fix the cause on the nodes, then retry.",
        )
        for i, issue in enumerate(data.get("issues") or [])
    ]
    if not checks and data.get("outcome") == "failed":
        checks.append(
            Check(
                "validation", "Test-Cluster", "fail", data.get("test_result", ""), "See the report."
            )
        )
    return checks


def _report(data: dict) -> dict:
    return {
        "outcome": data.get("outcome"),
        "test_result": data.get("test_result"),
        "issues": data.get("issues") or [],
        "path": data.get("report_path"),
        "html": data.get("report_html"),
        "truncated": bool(data.get("report_truncated")),
    }


def _artifacts(view: RunView, method: str, validation: dict | None) -> dict:
    artifacts: dict[str, Any] = {"method": method, "cluster_name": _name(view)}
    report = outputs(validation).get(view.first_node.name) if validation else None
    if report:
        artifacts["test_cluster_report"] = _report(validation_reading(report))
    return artifacts


def _conclude(view: RunView, results: dict, method: str, validation: dict | None) -> Finish:
    """Every node sees the requested cluster with all of this deployment's nodes Up."""
    detected = outputs(results)
    checks = failure_checks(results, "verify", "Reading the cluster state")
    for node in view.node_names:
        data = detected.get(node)
        if data is None:
            continue
        if not data.get("exists") or str(data.get("name", "")).upper() != _name(view):
            checks.append(
                Check(
                    key=f"member:{node}",
                    title=f"{node} is not a member of {_name(view)}",
                    status="fail",
                    evidence=f"Cluster seen from {node}: {data.get('name') or 'none'}.",
                    remediation="Check Failover Cluster Manager; add the node with "
                    "Add-ClusterNode, then retry.",
                    node=node,
                )
            )
    checks.extend(_node_state_checks(view, detected))
    checks.extend(_address_check(view, detected))
    report = outputs(validation).get(view.first_node.name) if validation else None
    if report:
        reading = validation_reading(report)
        checks.extend(c for c in _validation_checks(reading) if c.status != "fail")
        checks.append(verdict.outcome_check(reading))
    verb = "adopted" if method == "adopted" else "created"
    summary = f"Cluster {_name(view)} was {verb}; all {len(view.node_names)} nodes are Up."
    if method == "credssp":
        summary += " " + CREDSSP_REMINDER
        checks.append(Check("credssp", "Disable CredSSP", "info", "", CREDSSP_REMINDER))
    return conclude(
        summary,
        f"Cluster {_name(view)} is not healthy yet.",
        checks,
        _artifacts(view, method, validation),
    )


def _node_state_checks(view: RunView, detected: dict) -> list[Check]:
    seen = next((d for d in detected.values() if d.get("exists")), None)
    if seen is None:
        return []
    states = {str(m["name"]).upper(): m.get("state") for m in seen.get("nodes", [])}
    return [
        Check(
            key=f"node_state:{node}",
            title=f"{node} is {states.get(node.upper()) or 'missing'} in the cluster",
            status="fail",
            evidence=f"Get-ClusterNode reports {states.get(node.upper()) or 'no such node'}.",
            remediation="Start the Cluster Service on the node (Start-ClusterNode) or resume it "
            "(Resume-ClusterNode), then retry.",
            node=node,
        )
        for node in view.node_names
        if states.get(node.upper()) != "Up"
    ]


def _address_check(view: RunView, detected: dict) -> list[Check]:
    wanted = str(view.inputs.get("cluster_address", ""))
    seen = next((d.get("address") for d in detected.values() if d.get("address")), None)
    if not seen or not wanted or seen == wanted:
        return []
    return [
        Check(
            key="cluster_address",
            title="The cluster has another address than the one entered",
            status="warn",
            evidence=f"Cluster IP address {seen}; entered {wanted}.",
            remediation="The existing address is kept. Update the entry if the cluster address "
            "is documented elsewhere.",
        )
    ]


STEP = BaseCluster()
