"""Creating and editing deployments: plain functions the views and the API share."""

from sqlalchemy import func, select

from app.events.publish import publish
from app.execution.probe import TESTED, addresses
from app.extensions import db
from app.guides import DEFAULT_GUIDE, get_guide
from app.models import (
    Deployment,
    DeploymentStep,
    Event,
    Node,
    NodeAction,
    StepRun,
    User,
    utcnow,
)

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


FINISHED = ("completed", "aborted")


def finished_refusal(deployment: Deployment) -> str | None:
    """Why a finished deployment's nodes are no longer edited, or None while it is not finished."""
    if deployment.status not in FINISHED:
        return None
    return (
        f"This deployment is {deployment.status}: its nodes are part of its record and no longer "
        "change. Start a new deployment to install on other nodes."
    )


def nodes_locked(deployment: Deployment) -> str | None:
    """Why the node list can no longer change (remote changes have started), or None."""
    if deployment.status in FINISHED:
        return finished_refusal(deployment)
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


PROBE_SCRIPT = "connection_probe"


def node_addresses(deployment: Deployment) -> dict[str, list[tuple[str, int | None]]]:
    """Per node name, the (address, prefix length) pairs its newest connection probe reported:
    from Test connections (connection.tested events) or the Prerequisites step's probe phase,
    whichever is newer. Nodes never probed are absent (nothing is known about them)."""

    names = {n.name for n in deployment.nodes}
    newest: dict[str, tuple] = {}
    events = db.session.scalars(
        select(Event)
        .where(Event.deployment_id == deployment.id, Event.kind == TESTED)
        .order_by(Event.seq.desc())
        .limit(200)
    )
    for event in events:
        payload = event.payload or {}
        if event.node_name in names and payload.get("ok") and event.node_name not in newest:
            newest[event.node_name] = (event.created_at, payload.get("addresses") or [])
    actions = db.session.scalars(
        select(NodeAction)
        .join(StepRun, NodeAction.step_run_id == StepRun.id)
        .where(
            StepRun.deployment_id == deployment.id,
            NodeAction.script == PROBE_SCRIPT,
            NodeAction.status == "succeeded",
        )
        .order_by(NodeAction.id.desc())
        .limit(200)
    )
    seen: set[str] = set()
    for action in actions:
        name = action.node_name
        if name not in names or name in seen or not isinstance(action.result, dict):
            continue
        seen.add(name)
        at = action.finished_at or action.created_at
        if name not in newest or (at and newest[name][0] and at > newest[name][0]):
            data = action.result.get("data")
            newest[name] = (at, addresses(data if isinstance(data, dict) else {}))
    return {
        name: [(a["address"], a.get("prefix_length")) for a in found if a.get("address")]
        for name, (_, found) in newest.items()
        if found
    }
