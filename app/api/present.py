"""Rows as the plain dicts the API schemas dump. Secrets appear only as names, never values: runs
and actions come from app.history.records, and what users typed passes app.masking."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app import validators
from app.context import guide_for, run_view
from app.execution import health, vault
from app.extensions import db
from app.history.records import run_record, shown_inputs
from app.masking import MASK, mask
from app.models import Deployment, StepRun
from app.steps import Phase, Step


def node_dict(node) -> dict[str, Any]:
    return {
        "name": node.name,
        "host": node.host,
        "port": node.port,
        "transport": node.transport,
        "auth": node.auth,
        "cert_validation": node.cert_validation,
        "excluded": node.excluded,
        "exclude_reason": node.exclude_reason,
    }


def step_dict(step: Step, record, deployment: Deployment) -> dict[str, Any]:
    inputs = shown_inputs(record.inputs, step.secret_fields)
    return {
        "key": step.key,
        "title": step.title,
        "status": record.status,
        "runnable": step.runnable,
        "has_inputs": step.form_class is not None,
        "inputs": inputs,
        "secret_fields": list(step.secret_fields),
        "input_warnings": step.input_warnings(deployment, record.inputs or {}),
        "skip_reason": record.skip_reason,
        "updated_at": record.updated_at,
    }


def summary_dict(deployment: Deployment) -> dict[str, Any]:
    return {
        "id": deployment.id,
        "name": deployment.name,
        "domain_fqdn": deployment.domain_fqdn,
        "status": deployment.status,
        "current_step": deployment.current_step,
        "created_by": deployment.created_by.username if deployment.created_by else None,
        "created_at": deployment.created_at,
        "last_activity_at": deployment.last_activity_at,
    }


def deployment_dict(deployment: Deployment) -> dict[str, Any]:
    guide = guide_for(deployment)
    records = {s.step_key: s for s in deployment.steps}
    return {
        **summary_dict(deployment),
        "guide": deployment.guide_key,
        "guide_version": deployment.guide_version,
        "nodes": [node_dict(n) for n in deployment.nodes],
        "kerberos_kdcs": deployment.kerberos_kdcs,
        "ca_certificates": validators.ca_bundle_summary(deployment.ca_bundle),
        "unvalidated_nodes": [n.name for n in deployment.unvalidated_nodes],
        "steps": [
            step_dict(s, records[s.key], deployment) for s in guide.steps if s.key in records
        ],
        "secrets_held": sorted(vault.secret_names(deployment.id)),
    }


def run_dict(run: StepRun) -> dict[str, Any]:
    """A step run as RunOut, its actions as NodeActionOut: app.history.records' fields, all."""
    return run_record(run)


def runs_of(deployment_id: int) -> list[StepRun]:
    """Every attempt of every step, oldest first."""
    return list(
        db.session.scalars(
            select(StepRun).where(StepRun.deployment_id == deployment_id).order_by(StepRun.id)
        )
    )


def status_dict(deployment: Deployment) -> dict[str, Any]:
    guide = guide_for(deployment)
    runs = runs_of(deployment.id)
    active = next((r for r in runs if r.status in ("queued", "running")), None)
    records = {s.step_key: s for s in deployment.steps}
    steps = [
        {
            "key": s.key,
            "title": s.title,
            "status": records[s.key].status,
            "skip_reason": records[s.key].skip_reason,
            "runs": [run_dict(r) for r in reversed(runs) if r.step_key == s.key],
        }
        for s in guide.steps
        if s.key in records
    ]
    return {
        "id": deployment.id,
        "status": deployment.status,
        "current_step": deployment.current_step,
        "active_run": run_dict(active) if active else None,
        "nodes": [node_dict(n) for n in deployment.nodes],
        "kerberos_kdcs": deployment.kerberos_kdcs,
        "ca_certificates": validators.ca_bundle_summary(deployment.ca_bundle),
        "unvalidated_nodes": [n.name for n in deployment.unvalidated_nodes],
        "steps": steps,
        "last_event_seq": deployment.event_seq,
        "service_notices": health.notices(
            (active.started_at or active.created_at) if active else None
        ),
    }


def _held_values(deployment_id: int) -> set[str]:
    try:
        _, secrets = vault.load_secrets(deployment_id)
    except vault.VaultEmpty:
        return set()
    return {v for v in secrets.values() if isinstance(v, str) and v}


def _masked(value: Any, held: set[str]) -> Any:
    if isinstance(value, str):
        return MASK if value in held else value
    if isinstance(value, list):
        return [_masked(v, held) for v in value]
    if isinstance(value, dict):
        return {k: _masked(v, held) for k, v in value.items()}
    return value


def phase_dict(phase: Phase, held: set[str]) -> dict[str, Any]:
    return {
        "name": phase.name,
        "title": phase.title,
        "changes_state": phase.changes_state,
        "actions": [
            {
                "node": a.node,
                "script": a.script,
                "label": a.label or None,
                "parameters": mask(_masked(dict(a.params), held)),
                "secret_parameters": {p: f"{MASK} ({entry})" for p, entry in a.secrets.items()},
            }
            for a in phase.actions
        ],
    }


def plan_dict(deployment: Deployment, step: Step) -> dict[str, Any]:
    """The plan preview of a step with the saved inputs; secret values masked."""
    phases: list[Phase] = []
    if step.runnable:
        phases = step.preview(run_view(deployment, step.key, vault.secret_names(deployment.id)))
    held = _held_values(deployment.id)
    return {
        "deployment_id": deployment.id,
        "step": step.key,
        "runnable": step.runnable,
        "phases": [phase_dict(p, held) for p in phases],
    }
