"""The cluster's own addresses and names, checked before a node sees them: the cluster and
access point addresses against what the nodes' connection probes reported and against each other,
the names against the nodes' and each other (base_cluster and cluster_role declare these rules)."""

import ipaddress
from collections.abc import Callable

from app import validators
from app.models import Deployment

Addresses = dict[str, list[tuple[str, int | None]]]

ADDRESS_FIELDS = {
    "cluster_address": ("Cluster address", "the cluster address"),
    "access_point_address": ("Access point address", "the access point address"),
}


def _known_addresses(deployment: Deployment, probed: Callable[[], Addresses]) -> Addresses:
    """What the nodes' connection probes reported, plus WinRM hosts given as IP addresses."""
    known = {name: list(pairs) for name, pairs in probed().items()}
    for node in deployment.nodes:
        try:
            host = str(ipaddress.ip_address(node.host))
        except ValueError:
            continue
        if all(host != a for a, _ in known.get(node.name, [])):
            known.setdefault(node.name, []).append((host, None))
    return known


def cross_check(
    deployment: Deployment, data: dict, probed: Callable[[], Addresses]
) -> dict[str, str]:
    """Rules that need the deployment: the cluster and access point addresses against the
    addresses the nodes reported (app.validators.address_problem) and against each other, and
    the names against the nodes' and each other."""
    errors: dict[str, str] = {}
    saved = {s.step_key: s.inputs or {} for s in deployment.steps}
    given = {
        field: data.get(field) or saved.get(key, {}).get(field)
        for field, key in (
            ("cluster_address", "base_cluster"),
            ("access_point_address", "cluster_role"),
        )
    }
    known = None
    for field, (what, _) in ADDRESS_FIELDS.items():
        value = data.get(field)
        if not value:
            continue
        if known is None:
            known = _known_addresses(deployment, probed)
        others = {ADDRESS_FIELDS[f][1]: v for f, v in given.items() if f != field and v}
        problem = validators.address_problem(str(value), what, known, others)
        if problem:
            errors[field] = problem
    cluster_name = saved.get("base_cluster", {}).get("cluster_name")
    if data.get("access_point_name") and data["access_point_name"] == cluster_name:
        errors["access_point_name"] = "The access point name must differ from the cluster name."
    node_names = {n.name for n in deployment.nodes}
    for field in ("cluster_name", "access_point_name"):
        if data.get(field) in node_names:
            errors[field] = f"{data[field]} is already a node's name."
    return errors
