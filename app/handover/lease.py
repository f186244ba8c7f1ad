"""One driver at a time: a lease per deployment, taken by the first driver and renewed while active.

Acquiring is a conditional UPDATE (free, expired or already mine) or an INSERT racing on the primary
key, so two people opening a free deployment at once cannot both become its driver.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from flask import current_app, flash, redirect, url_for
from sqlalchemy import case, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import Deployment, DeploymentLease, User, utcnow


@dataclass(frozen=True)
class LeaseState:
    """What a page needs: who drives, until when, and whether that is the viewer."""

    holder_id: int | None
    holder_name: str | None
    expires_at: object | None
    mine: bool

    @property
    def held_by_other(self) -> bool:
        return self.holder_id is not None and not self.mine


def _ttl() -> timedelta:
    return timedelta(seconds=current_app.config.get("LEASE_SECONDS", 120))


def current(deployment_id: int) -> DeploymentLease | None:
    """The live (unexpired) lease, if any."""
    lease = db.session.get(DeploymentLease, deployment_id)
    return lease if lease is not None and lease.expires_at > utcnow() else None


def state(deployment_id: int, user: User) -> LeaseState:
    """The lease as the viewer sees it."""
    lease = current(deployment_id)
    if lease is None:
        return LeaseState(None, None, None, False)
    name = lease.holder.username if lease.holder else "someone"
    return LeaseState(lease.holder_id, name, lease.expires_at, lease.holder_id == user.id)


def acquire(deployment_id: int, user_id: int) -> bool:
    """Take or renew the lease unless someone else holds a live one. True when held.

    A lease of this user with more than half its time left is not rewritten (pages renew it every
    30 s). Otherwise it is written in its own short transaction on its own connection, so taking
    it commits at once without ending the request's transaction or expiring the rows it has
    loaded. Callers have only read so far (no write lock or row lock of theirs can block it)."""
    now = utcnow()
    row = db.session.get(DeploymentLease, deployment_id)
    held = row if row is not None and row.expires_at > now else None
    if held is not None and held.holder_id == user_id and held.expires_at - now > _ttl() / 2:
        return True
    if row is not None:
        db.session.expire(row)  # rewritten below, outside this session (live or expired)
    values = {"renewed_at": now, "expires_at": now + _ttl()}
    with db.engine.begin() as conn:
        taken = conn.execute(
            update(DeploymentLease)
            .where(
                DeploymentLease.deployment_id == deployment_id,
                or_(DeploymentLease.holder_id == user_id, DeploymentLease.expires_at <= now),
            )
            .values(**values, holder_id=user_id, acquired_at=_restart_if_new_holder(user_id, now))
        ).rowcount
        if taken == 1:
            return True
        exists = conn.scalar(
            select(DeploymentLease.holder_id).where(DeploymentLease.deployment_id == deployment_id)
        )
    if exists is not None:
        return False
    return _insert(deployment_id, user_id, values)


def _restart_if_new_holder(user_id: int, now):
    """acquired_at is kept on renewal and restarts when the lease changes hands."""
    return case((DeploymentLease.holder_id == user_id, DeploymentLease.acquired_at), else_=now)


def _insert(deployment_id: int, user_id: int, values: dict) -> bool:
    """First lease of the deployment; of two racing inserts one wins, the other reads who did."""
    try:
        with db.engine.begin() as conn:
            conn.execute(
                insert(DeploymentLease).values(
                    deployment_id=deployment_id,
                    holder_id=user_id,
                    acquired_at=values["renewed_at"],
                    **values,
                )
            )
        return True
    except IntegrityError:
        lease = current(deployment_id)
        return lease is not None and lease.holder_id == user_id


def take(deployment_id: int, user_id: int) -> int | None:
    """Force the lease to `user_id` (take-over); returns the previous live holder's id. No commit."""
    previous = current(deployment_id)
    previous_id = previous.holder_id if previous else None
    now = utcnow()
    lease = db.session.get(DeploymentLease, deployment_id)
    if lease is None:
        lease = DeploymentLease(deployment_id=deployment_id, holder_id=user_id)
        db.session.add(lease)
    lease.holder_id, lease.acquired_at, lease.renewed_at = user_id, now, now
    lease.expires_at = now + _ttl()
    return previous_id


def release(deployment_id: int, user_id: int) -> None:
    """Give the lease up (if held by `user_id`); commits."""
    db.session.execute(
        update(DeploymentLease)
        .where(DeploymentLease.deployment_id == deployment_id, DeploymentLease.holder_id == user_id)
        .values(expires_at=utcnow())
    )
    db.session.commit()


def refuse_unless_driver(deployment: Deployment, user: User):
    """For a state-changing request: None when `user` holds (or just took) the lease, else a redirect."""
    if acquire(deployment.id, user.id):
        return None
    holder = state(deployment.id, user).holder_name or "someone else"
    flash(
        f"{holder} is driving this deployment now; your request was not carried out. "
        "You are watching read-only.",
        "error",
    )
    return redirect(url_for("wizard.resume", deployment_id=deployment.id))


def holders(deployment_ids: list[int]) -> dict[int, str]:
    """Live lease holders' names for a page of deployments."""
    if not deployment_ids:
        return {}
    rows = db.session.execute(
        select(DeploymentLease.deployment_id, User.username)
        .join(User, User.id == DeploymentLease.holder_id)
        .where(
            DeploymentLease.deployment_id.in_(deployment_ids), DeploymentLease.expires_at > utcnow()
        )
    )
    return {row[0]: row[1] for row in rows.all()}
