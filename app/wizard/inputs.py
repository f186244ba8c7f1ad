"""Saving a step's inputs: plain values to the database, secret fields to the vault, all or nothing."""

from app.execution import vault
from app.extensions import db
from app.models import Deployment, User, utcnow
from app.wizard.engine import Step


def cross_check(step: Step, deployment: Deployment, data: dict) -> dict[str, str]:
    """Rules that need the deployment (addresses distinct from the nodes' and from each other)."""
    errors: dict[str, str] = {}
    taken = {n.host for n in deployment.nodes}
    saved = {s.step_key: s.inputs or {} for s in deployment.steps}
    cluster_address = saved.get("base_cluster", {}).get("cluster_address")
    for field in ("cluster_address", "access_point_address"):
        value = data.get(field)
        if value and value in taken:
            errors[field] = f"{value} is already a node's address."
    if data.get("access_point_address") and data["access_point_address"] == cluster_address:
        errors["access_point_address"] = (
            "The access point needs its own address, not the cluster's."
        )
    cluster_name = saved.get("base_cluster", {}).get("cluster_name")
    if data.get("access_point_name") and data["access_point_name"] == cluster_name:
        errors["access_point_name"] = "The access point name must differ from the cluster name."
    node_names = {n.name for n in deployment.nodes}
    for field in ("cluster_name", "access_point_name"):
        if data.get(field) in node_names:
            errors[field] = f"{data[field]} is already a node's name."
    return errors


def save_inputs(step: Step, deployment: Deployment, data: dict, user: User) -> None:
    """Store the form's values; secret fields go to the vault and only their presence is kept."""
    plain = {k: v for k, v in data.items() if k not in step.secret_fields and k != "csrf_token"}
    secrets = {k: data[k] for k in step.secret_fields if data.get(k)}
    record = deployment.step(step.key)
    record.inputs = plain
    record.updated_by_id = user.id
    deployment.current_step = step.key
    deployment.last_activity_at = utcnow()
    if secrets:
        vault.merge_secrets(deployment.id, secrets, owner_id=user.id, commit=False)
    db.session.commit()
