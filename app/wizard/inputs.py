"""Saving a step's inputs: plain values to the database, secret fields to the vault, all or nothing."""

from app.execution import vault
from app.extensions import db
from app.models import Deployment, User, utcnow
from app.steps import Step


def save_inputs(
    step: Step, deployment: Deployment, data: dict, user: User, *, commit: bool = True
) -> None:
    """Store the form's values; secret fields go to the vault and only their presence is kept.

    commit=False: in the caller's transaction (a run that starts with these inputs)."""
    plain = {k: v for k, v in data.items() if k not in step.secret_fields and k != "csrf_token"}
    secrets = {k: data[k] for k in step.secret_fields if data.get(k)}
    record = deployment.step(step.key)
    record.inputs = plain
    record.updated_by_id = user.id
    deployment.current_step = step.key
    deployment.last_activity_at = utcnow()
    if secrets:
        vault.merge_secrets(deployment.id, secrets, owner_id=user.id, commit=False)
    if commit:
        db.session.commit()
