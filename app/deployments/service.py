"""Creating and editing deployments: plain functions the views and the API share."""

from sqlalchemy import func, select

from app.events.publish import publish
from app.extensions import db
from app.guides import DEFAULT_GUIDE, get_guide
from app.models import Deployment, DeploymentStep, Node, User, utcnow

NODE_FIELDS = ("name", "host", "port", "transport", "auth", "cert_validation")


def _apply_nodes(deployment: Deployment, rows: list[dict]) -> None:
    """Replace the node list, keeping rows whose name did not change."""
    existing = {n.name: n for n in deployment.nodes}
    kept = []
    for position, row in enumerate(rows):
        node = existing.get(row["name"]) or Node()
        for field in NODE_FIELDS:
            setattr(node, field, row[field])
        node.position = position
        kept.append(node)
    deployment.nodes = kept


def create_deployment(
    data: dict, user: User, guide_key: str = DEFAULT_GUIDE, step_inputs: dict | None = None
) -> Deployment:
    """A new deployment at the first step of its guide, with one record per step."""
    guide = get_guide(guide_key)
    deployment = Deployment(
        name=data["name"],
        domain_fqdn=data["domain_fqdn"],
        ca_bundle=data.get("ca_bundle") or None,
        kerberos_kdcs=data.get("kerberos_kdcs") or None,
        guide_key=guide.key,
        guide_version=guide.version,
        current_step=guide.steps[0].key,
        created_by_id=user.id,
        status="draft",
    )
    step_inputs = step_inputs or {}
    deployment.steps = [
        DeploymentStep(step_key=s.key, inputs=dict(step_inputs.get(s.key, {}))) for s in guide.steps
    ]
    _apply_nodes(deployment, data["nodes"])
    db.session.add(deployment)
    db.session.commit()
    publish(deployment.id, "deployment.created", {"name": deployment.name}, actor_id=user.id)
    return deployment


def nodes_locked(deployment: Deployment) -> str | None:
    """Why the node list can no longer change (remote changes have started), or None."""
    first = deployment.steps[0].step_key if deployment.steps else None
    started = [
        s
        for s in deployment.steps
        if s.step_key != first and s.status in {"in_progress", "done", "needs_attention"}
    ]
    if started:
        return "Nodes cannot change once the cluster steps have started; start a new deployment."
    return None


def update_deployment(deployment: Deployment, data: dict, user: User) -> None:
    """Change the name, domain or nodes; allowed until remote work has started."""
    deployment.name = data["name"]
    deployment.domain_fqdn = data["domain_fqdn"]
    deployment.ca_bundle = data.get("ca_bundle") or None
    deployment.kerberos_kdcs = data.get("kerberos_kdcs") or None
    _apply_nodes(deployment, data["nodes"])
    deployment.last_activity_at = utcnow()
    db.session.commit()
    publish(deployment.id, "deployment.updated", {"nodes": len(data["nodes"])}, actor_id=user.id)


def list_deployments(page: int, per_page: int = 25) -> tuple[list[Deployment], int]:
    """Newest activity first, with the total count for paging."""
    total = db.session.scalar(select(func.count()).select_from(Deployment)) or 0
    rows = db.session.scalars(
        select(Deployment)
        .order_by(Deployment.last_activity_at.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    return list(rows), total
