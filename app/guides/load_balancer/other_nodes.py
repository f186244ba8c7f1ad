"""Step 4: the remaining nodes, installed with the first node's settings, verified side by side.

Phases: "detect" (ams_detect on every node, the first one as the reference) -> the verdict. Each
other node must run the same version, as the same service account, with the same connection
string and the same certificate bound to the HTTPS port as the first node (Lithnet's farm rule);
the license is not entered again (it is in the shared database).
"""

from __future__ import annotations

from app.guides.load_balancer.farm import Farm, check, install_checks
from app.guides.load_balancer.first_node import install_steps, manual_install_check
from app.guides.shared.flow import failure_checks, first_node, needs_attention, outputs
from app.steps import Action, Check, Finish, Phase, RunView, Step

COMPARED = (
    ("version", "Version", lambda d: str(d.get("version") or "")),
    (
        "account",
        "Service account",
        lambda d: str((d.get("service") or {}).get("account") or "").lower(),
    ),
    (
        "connection_string",
        "Connection string",
        lambda d: str(d.get("connection_string") or "").lower(),
    ),
    (
        "thumbprint",
        "TLS certificate",
        lambda d: str((d.get("binding") or {}).get("thumbprint") or "").upper(),
    ),
)


class OtherNodes(Step):
    """Every other node against the first one and the farm's settings."""

    key = "other_nodes"
    title = "Remaining nodes"
    purpose = (
        "Install the other nodes with exactly the first node's account, database and certificate."
    )
    guidance = (
        "Repeat the installation on each remaining node with the same service account, the same "
        "connection string and the same TLS certificate. The license is not entered again: it "
        "is in the shared database.",
        "The wizard reads every node and compares it with the first one. A node that differs "
        "would answer the balancer with another certificate, or could not read the farm's "
        "protected settings.",
    )
    read_only = True

    def preview(self, view: RunView) -> list[Phase]:
        return [_detect(view)]

    def advance(self, view: RunView) -> Phase | Finish:
        detect = view.phase("detect")
        if detect is None:
            return _detect(view)
        return _verdict(view, detect)

    def drift_check(self, view: RunView) -> Phase | None:
        return _detect(view) if view.phase("detect") is None else None


def _detect(view: RunView) -> Phase:
    farm = Farm.of(view)
    params: dict = {"Port": farm.port, "Thumbprint": farm.thumbprint}
    actions = tuple(
        Action(n, "ams_detect", params, label=f"Access Manager on {n}") for n in view.node_names
    )
    return Phase("detect", "Read Access Manager on every node", actions)


def _reported(found: list[Check], key: str, node: str) -> bool:
    """The difference was already named by the check against the farm's settings."""
    keys = {f"{key}:{node}"} | ({f"binding:{node}"} if key == "thumbprint" else set())
    return any(c.key in keys for c in found)


def _verdict(view: RunView, detect: dict) -> Finish:
    farm = Farm.of(view)
    first = first_node(view)
    readings = outputs(detect)
    found: list[Check] = failure_checks(detect, "detect", "Reading Access Manager")
    reference = readings.get(first)
    if reference is None or not reference.get("installed"):
        found.append(
            check(
                "reference",
                first,
                f"The first node, {first}, cannot be read",
                "fail",
                "The first node is the reference every other node is compared with.",
                "Finish the First node step, then run this one.",
            )
        )
        return needs_attention("The first node is not available as the reference.", found)
    missing = [n for n, d in readings.items() if n != first and not d.get("installed")]
    for node in missing:
        found.append(manual_install_check(farm, node, first=False))
    table = {}
    for node, data in readings.items():
        if node == first or not data.get("installed"):
            continue
        found += install_checks(farm, node, data)
        for key, title, read in COMPARED:
            theirs, ours = read(data), read(reference)
            if theirs != ours and not _reported(found, key, node):
                found.append(
                    check(
                        f"same_{key}",
                        node,
                        f"{title} of {node} differs from {first}",
                        "fail",
                        f"{node}: {theirs or 'none'}; {first}: {ours or 'none'}.",
                        f"Use exactly the first node's {title.lower()} on {node}, then retry.",
                    )
                )
        table[node] = {key: read(data) for key, _, read in COMPARED}
    table[first] = {key: read(reference) for key, _, read in COMPARED}
    artifacts = {"nodes": table}
    if missing:
        artifacts["manual_checklist"] = {n: install_steps(farm, n, first=False) for n in missing}
        return needs_attention(
            f"Install Access Manager on {', '.join(missing)} with the first node's settings, then "
            "run this step again.",
            found,
            artifacts,
        )
    if any(c.status == "fail" for c in found):
        return needs_attention("Some nodes differ from the first node.", found, artifacts)
    others = [n for n in view.node_names if n != first]
    found.append(
        check(
            "identical",
            None,
            "Identical settings",
            "pass",
            f"{', '.join(others)} match {first}: version, service account, connection string "
            "and certificate.",
        )
    )
    return Finish("done", f"Every node matches {first}.", tuple(found), (), artifacts)


STEP = OtherNodes()
