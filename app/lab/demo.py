"""Pre-filled values for a deployment against the running demo lab (never a secret)."""

import functools
from pathlib import Path

from app.lab.store import LabStore
from app.steps import Guide

# Where a step has the operator work by hand (on the nodes, at the balancer), the template
# templates/lab/hints/<step key>.html says how to play that part against the demo lab.
HINTS = Path(__file__).resolve().parents[2] / "templates" / "lab" / "hints"


@functools.cache
def _hinted_steps() -> frozenset[str]:
    """The step keys with a hint template, listed once: the templates ship with the code."""
    return frozenset(path.stem for path in HINTS.glob("*.html") if path.is_file())


def _hint(step_key: str) -> str | None:
    return f"lab/hints/{step_key}.html" if step_key in _hinted_steps() else None


def lab_state(instance_dir: Path) -> dict | None:
    """The demo lab's state, if a lab has been started under this instance folder."""
    path = Path(instance_dir) / "lab" / "state.json"
    return LabStore(path).read() if path.exists() else None


def deployment_values(state: dict, base_port: int) -> dict:
    """Deployment form data: the lab's domain and nodes on loopback, NTLM over HTTP."""
    nodes = [
        {
            "name": name,
            "host": "127.0.0.1",
            "port": base_port + i,
            "transport": "http",
            "auth": "ntlm",
            "cert_validation": True,
        }
        for i, name in enumerate(state["nodes"])
    ]
    return {"name": "Demo lab", "domain_fqdn": state["domain"]["fqdn"], "nodes": nodes}


def step_inputs(state: dict, guide: Guide) -> dict[str, dict]:
    """Each step's inputs taken from the lab's suggestions, limited to that step's form fields."""
    suggested = state.get("suggested_inputs", {})
    inputs = {}
    for step in guide.steps:
        if step.form_class is None:
            continue
        fields = set(step.form_class.__dict__) - set(step.secret_fields)
        inputs[step.key] = {k: v for k, v in suggested.items() if k in fields}
    return inputs


def operator_hint(instance_dir: Path, base_port: int, nodes: list, step_key: str) -> str | None:
    """The hint template for `step_key` when every node of the deployment is one of the running
    demo lab's (the addresses `deployment_values` fills in); None otherwise, so real deployments
    never see it."""
    hint = _hint(step_key)
    state = lab_state(instance_dir) if hint else None
    if state is None or not nodes:
        return None
    lab = {(n["host"], n["port"]) for n in deployment_values(state, base_port)["nodes"]}
    return hint if all((node.host, node.port) in lab for node in nodes) else None
