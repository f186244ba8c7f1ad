"""Step 3: give the cluster a quorum witness when its node count needs one.

detect (quorum_get) -> decide (even node count needs a witness; already as asked = done) -> apply
(quorum_set, parameter set chosen inside the script by WitnessType) -> verify (quorum_get again).
"""

from flask_wtf import FlaskForm
from wtforms import RadioField

from app import validators
from app.guides.shared.flow import (
    conclude,
    failure_checks,
    failures,
    needs_attention,
    one_action_phase,
    outputs,
)
from app.steps import Action, Check, Finish, Phase, RunView, Step
from app.wizard.fields import Rule, SecretField, TextField, required_when

WITNESS_KINDS = {
    "file_share": "File Share Quorum Witness",
    "cloud": "Cloud Witness",
    "disk": "Physical Disk",
    "none": None,
}
ACCESS_KEY_SECRET = "cloud_access_key"  # noqa: S105 - a vault entry name
_APPLY_REMEDIATION = {
    "file_share": "Check that the share exists and that the cluster's computer account (or Domain "
    "Computers) may change it, both in the share permissions and in NTFS, then retry.",
    "cloud": "Check the storage account name, the access key and that every node reaches "
    "<account>.blob.<endpoint> on TCP 443, then retry.",
    "disk": "A disk witness needs a shared disk that is already in the cluster's Available "
    "Storage.",
    "none": "Read the error above, then retry.",
}


def _shown_for(kind: str) -> dict:
    """Shown only while that witness kind is chosen (static/js/disclose.js; all shown without JS)."""
    return {"data-show-when": f"witness_type={kind}"}


class QuorumForm(FlaskForm):
    """The witness kind and its settings."""

    witness_type = RadioField(
        "Witness",
        choices=[
            ("file_share", "File share witness"),
            ("cloud", "Cloud witness (Azure storage account)"),
            ("disk", "Disk witness"),
            ("none", "No witness (odd number of nodes only)"),
        ],
        default="file_share",
    )
    share_path = TextField(
        "File share path",
        [required_when("witness_type", "file_share"), Rule(validators.unc_path, optional=True)],
        description="\\\\fileserver\\witness - every node's computer account needs write access.",
        render_kw=_shown_for("file_share"),
    )
    cloud_account = TextField(
        "Storage account name",
        [
            required_when("witness_type", "cloud"),
            Rule(validators.storage_account_name, optional=True),
        ],
        description="As in the Azure portal: 3 to 24 lowercase letters and digits.",
        render_kw=_shown_for("cloud"),
    )
    cloud_access_key = SecretField(
        "Storage account access key",
        [Rule(validators.access_key, optional=True)],
        description="Kept encrypted only while this step runs; wiped once the witness is set.",
        render_kw=_shown_for("cloud"),
    )
    cloud_endpoint = TextField(
        "Endpoint",
        [Rule(validators.hostname, optional=True)],
        description="Leave empty for core.windows.net.",
        render_kw=_shown_for("cloud"),
    )
    disk_name = TextField(
        "Cluster disk resource",
        [
            required_when("witness_type", "disk"),
            Rule(lambda v: validators.plain_text(v, "Disk name", 128), optional=True),
        ],
        render_kw=_shown_for("disk"),
    )


class Quorum(Step):
    """Set-ClusterQuorum with the chosen witness, verified with Get-ClusterQuorum."""

    key = "quorum"
    replay_to_verify = True
    title = "Quorum witness"
    purpose = "Make sure the cluster keeps quorum when a node is down."
    guidance = (
        "With an even number of nodes, losing half of them would stop the cluster unless a witness "
        "casts the deciding vote. A file share on a server outside the cluster is the usual "
        "choice; "
        "a cloud witness suits sites with Azure access.",
        "With an odd number of nodes a witness is optional but still recommended.",
    )
    form_class = QuorumForm
    secret_fields = ("cloud_access_key",)
    wipe_on_success = ("cloud_access_key",)

    def input_warnings(self, deployment, inputs: dict) -> dict[str, str]:
        """A file share witness on one of the cluster's own nodes, said before the step runs."""
        path = str(inputs.get("share_path") or "")
        nodes = [(n.name, n.host) for n in deployment.active_nodes]
        node = _share_node(inputs.get("witness_type") or "file_share", path, nodes)
        if node is None:
            return {}
        return {
            "share_path": f"{path} is served by {node}, one of this cluster's own nodes. The "
            f"witness must outlast any one node: while {node} is down, its vote and the "
            "witness's are lost together, so the witness cannot break the tie it is there for. "
            "You may still save and run the step, but it is better to put the share on a "
            "server outside the cluster or to use a cloud witness."
        }

    def preview(self, view: RunView) -> list[Phase]:
        return [self._get(view, "detect"), self._apply(view), self._get(view, "verify")]

    def advance(self, view: RunView) -> Phase | Finish:
        detect = view.phase("detect")
        if detect is None:
            return self._get(view, "detect")
        if failures(detect):
            return needs_attention(
                "The quorum configuration could not be read.",
                failure_checks(detect, "detect", "Get-ClusterQuorum"),
            )
        current = outputs(detect)[view.first_node.name]
        kind = _kind(view)
        node_count = int(current.get("node_count") or len(view.nodes))
        if kind == "none" and node_count % 2 == 0:
            return needs_attention(
                "An even number of nodes needs a witness.",
                [_even_without_witness(node_count)],
            )
        if _matches(view, current):
            return Finish(
                "done",
                f"The quorum is already configured as requested ({_describe(current)}); "
                "nothing was changed.",
                tuple(_advice(kind, node_count) + share_on_node_checks(view)),
                artifacts={"quorum": current, "changed": False},
            )
        if kind == "cloud" and ACCESS_KEY_SECRET not in view.secret_names:
            return needs_attention(
                "The storage account access key is needed to configure the cloud witness.",
                [
                    Check(
                        key="cloud_access_key",
                        title="No storage account access key",
                        status="fail",
                        remediation="Enter the access key again in this step's form (it is kept "
                        "only while the step runs), then retry.",
                    )
                ],
            )
        apply = view.phase("apply")
        if apply is None:
            return self._apply(view)
        if failures(apply):
            return needs_attention(
                "Setting the quorum witness failed.",
                failure_checks(apply, "apply", "Set-ClusterQuorum", _APPLY_REMEDIATION[kind]),
            )
        verify = view.phase("verify")
        if verify is None:
            return self._get(view, "verify")
        return self._verified(view, verify, node_count)

    def _verified(self, view: RunView, verify: dict, node_count: int) -> Finish:
        checks = failure_checks(verify, "verify", "Get-ClusterQuorum")
        after = outputs(verify).get(view.first_node.name)
        if after is not None and not _matches(view, after):
            checks.append(
                Check(
                    key="quorum",
                    title="The quorum is not configured as requested",
                    status="fail",
                    evidence=f"Get-ClusterQuorum reports {_describe(after)}.",
                    remediation="Check the witness in Failover Cluster Manager (Configure Cluster "
                    "Quorum Settings), then retry.",
                )
            )
        checks.extend(_advice(_kind(view), node_count))
        checks.extend(share_on_node_checks(view))
        return conclude(
            f"Quorum witness configured: {_describe(after or {})}.",
            "The quorum witness could not be confirmed.",
            checks,
            {"quorum": after, "changed": True},
        )

    def drift_explanation(self, view: RunView) -> Check | None:
        """On a resume: which witness is gone and what the quorum is now (app.handover.drift)."""
        current = outputs(view.phase("detect")).get(view.first_node.name)
        if current is None or _matches(view, current):
            return None
        kind = _kind(view)
        wanted = _wanted(view)
        node_count = int(current.get("node_count") or len(view.nodes))
        now = _describe(current)
        if current.get("witness_kind"):
            what = f"The quorum now uses another witness: {now}, not {wanted} as this step set."
        else:
            what = f"The {wanted} this step set is gone: the quorum is now {now}."
        risk = (
            f" With {node_count} nodes and no witness, losing {node_count // 2} of them stops "
            "the cluster."
            if not current.get("witness_kind") and node_count % 2 == 0
            else ""
        )
        return Check(
            "drift.quorum",
            "The quorum witness changed",
            "fail",
            what + risk,
            "Open the Quorum witness step and run it again to set the witness back"
            + (" (enter the storage account access key again)" if kind == "cloud" else "")
            + ", or find out who changed it (Failover Cluster Manager, Configure Cluster Quorum "
            "Settings) if the change was intended.",
        )

    def _get(self, view: RunView, name: str) -> Phase:
        title = "Read the quorum configuration" if name == "detect" else "Verify the quorum"
        action = Action(node=view.first_node.name, script="quorum_get", label="Get-ClusterQuorum")
        return one_action_phase(name, title, action)

    def _apply(self, view: RunView) -> Phase:
        kind = _kind(view)
        params: dict[str, object] = {"WitnessType": kind}
        secrets: dict[str, str] = {}
        if kind == "file_share":
            params["SharePath"] = view.inputs.get("share_path", "")
        elif kind == "cloud":
            params["AccountName"] = view.inputs.get("cloud_account", "")
            if view.inputs.get("cloud_endpoint"):
                params["Endpoint"] = view.inputs["cloud_endpoint"]
            secrets = {"AccessKey": ACCESS_KEY_SECRET}
        elif kind == "disk":
            params["DiskName"] = view.inputs.get("disk_name", "")
        action = Action(
            node=view.first_node.name,
            script="quorum_set",
            params=params,
            secrets=secrets,
            label=f"Set-ClusterQuorum ({kind.replace('_', ' ')} witness)",
        )
        return one_action_phase("apply", "Configure the witness", action, changes_state=True)


def _kind(view: RunView) -> str:
    kind = view.inputs.get("witness_type") or "file_share"
    return kind if kind in WITNESS_KINDS else "file_share"


def _matches(view: RunView, current: dict) -> bool:
    """Whether Get-ClusterQuorum's answer is the witness the operator asked for."""
    kind = _kind(view)
    if current.get("witness_kind") != WITNESS_KINDS[kind]:
        return False
    if kind == "file_share":
        return _same_path(current.get("share_path"), view.inputs.get("share_path"))
    if kind == "cloud":
        endpoint = view.inputs.get("cloud_endpoint")
        return str(current.get("cloud_account", "")).lower() == str(
            view.inputs.get("cloud_account", "")
        ).lower() and (not endpoint or str(current.get("cloud_endpoint", "")).lower() == endpoint)
    if kind == "disk":
        return (
            str(current.get("witness_resource", "")).lower()
            == str(view.inputs.get("disk_name", "")).lower()
        )
    return True


def _wanted(view: RunView) -> str:
    """The witness the operator asked for, in Get-ClusterQuorum's words."""
    kind = _kind(view)
    where = {
        "file_share": view.inputs.get("share_path"),
        "cloud": view.inputs.get("cloud_account"),
        "disk": view.inputs.get("disk_name"),
    }.get(kind)
    name = WITNESS_KINDS[kind] or "no witness"
    return f"{name} ({where})" if where else name


def share_on_node_checks(view: RunView) -> list[Check]:
    """A file share witness served by one of the cluster's own nodes: a warning (it goes down
    with the node it is meant to outvote)."""
    path = str(view.inputs.get("share_path") or "")
    node = _share_node(_kind(view), path, [(n.name, n.host) for n in view.nodes])
    if node is None:
        return []
    return [
        Check(
            key="witness_on_node",
            title=f"The file share witness is on cluster node {node}",
            status="warn",
            evidence=f"{path} is served by {node}, a member of this cluster.",
            remediation="A witness must survive the loss of any node: when "
            f"{node} is down, the cluster loses its vote and the witness together. Put the "
            "share on a server outside the cluster (a file server, or a domain member in "
            "another site), or use a cloud witness, then run this step again.",
            node=node,
        )
    ]


def _share_node(kind: str, path: str, nodes: list[tuple[str, str]]) -> str | None:
    """The cluster node serving a file share witness's `path` ((name, host) pairs), or None."""
    return validators.share_on_node(path, nodes) if kind == "file_share" else None


def _same_path(a: object, b: object) -> bool:
    return str(a or "").rstrip("\\").lower() == str(b or "").rstrip("\\").lower()


def _describe(data: dict) -> str:
    kind = data.get("witness_kind")
    if not kind:
        return f"{data.get('quorum_type') or 'unknown'} quorum without a witness"
    where = data.get("share_path") or data.get("cloud_account") or data.get("witness_resource")
    return f"{kind} ({where})" if where else kind


def _even_without_witness(node_count: int) -> Check:
    return Check(
        key="witness_required",
        title=f"{node_count} nodes need a witness",
        status="fail",
        evidence="'No witness' was chosen for a cluster with an even number of nodes.",
        remediation="With an even node count, losing half of the nodes stops the cluster unless a "
        "witness breaks the tie. Choose a file share, cloud or disk witness, then retry.",
    )


def _advice(kind: str, node_count: int) -> list[Check]:
    if kind != "none":
        return []
    return [
        Check(
            key="witness_optional",
            title="No witness",
            status="info",
            evidence=f"{node_count} nodes (odd).",
            remediation="A witness is optional with an odd node count but still recommended.",
        )
    ]


STEP = Quorum()
