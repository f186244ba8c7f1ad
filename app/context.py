"""Plain views of a deployment's rows for the step contract (app.steps): what a step, a plan preview, the
engine and every page see. Knows no web page and no engine, so all of them may read it."""

from app.guides import get_guide
from app.models import Deployment
from app.steps import Guide, NodeInfo, RunView, Step


def guide_for(deployment: Deployment) -> Guide:
    """The guide this deployment started with."""
    return get_guide(deployment.guide_key)


def all_inputs(deployment: Deployment) -> dict[str, dict]:
    """Saved inputs of every step, keyed by step."""
    return {s.step_key: dict(s.inputs or {}) for s in deployment.steps}


def run_view(deployment: Deployment, step_key: str, secret_names=frozenset()) -> RunView:
    """A RunView with no results yet: used for plan previews and by the execution service."""
    inputs = all_inputs(deployment)
    nodes = tuple(
        NodeInfo(
            name=n.name,
            host=n.host,
            position=n.position,
            auth=n.auth,
            cert_validation=n.cert_validation,
        )
        for n in deployment.active_nodes
    )
    return RunView(
        deployment_name=deployment.name,
        domain_fqdn=deployment.domain_fqdn,
        nodes=nodes,
        inputs=inputs.get(step_key, {}),
        all_inputs=inputs,
        secret_names=frozenset(secret_names),
    )


def step_statuses(deployment: Deployment) -> dict[str, str]:
    """Status of every step by key."""
    return {s.step_key: s.status for s in deployment.steps}


def shown_status(step: Step, record_status: str | None, deployment_status: str) -> str:
    """A step's status as every page shows it (wizard, history, report, export).

    A step with nothing to run (the Summary) is done exactly when the deployment is completed;
    its record is kept so too (app.execution.machine.finishing), this also covers older records."""
    if not step.runnable:
        return "done" if deployment_status == "completed" else "not_started"
    return record_status or "not_started"
