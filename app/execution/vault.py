"""WinRM credentials and step secrets, Fernet-encrypted with CREDENTIAL_KEY, kept only while work is pending.

One Credential row per deployment holds the user name (not a secret) and one encrypted JSON object with every
secret: the WinRM password under WINRM_PASSWORD and step secrets (e.g. a license key) under their field names.
Nothing is stored in clear; rows expire after CREDENTIAL_TTL_MINUTES and are wiped when the deployment ends.

The row's created_at and owner_id say when and by whom the WinRM credentials were last stored (a
step secret merged later changes neither), so a page can offer them for the next steps (`held`).
Credentials a node refused after they were stored are never used again (`refusal`, `refused`).
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from cryptography.fernet import Fernet, InvalidToken
from flask import current_app
from sqlalchemy import and_, delete, event, or_, select
from sqlalchemy.orm import Session

from app.extensions import db
from app.models import Credential, Event, NodeAction, StepRun, User, utcnow
from app.remote import errors

WINRM_PASSWORD = "winrm_password"  # noqa: S105 - the vault entry name, not a password
WINRM_USERNAME = "winrm_username"  # offered to scripts that run a task as the operator


_CACHE = "amsw_vault"  # session.info: {deployment_id: (username, secrets)} for one transaction
_ROWS = "amsw_vault_rows"  # session.info: {deployment_id: Credential row or None} read by a join
_HELD = "amsw_vault_held"  # session.info: {deployment_id: Held or None} as held() found it


class VaultEmpty(LookupError):
    """No usable credentials for the deployment (never stored, wiped or expired)."""


def _cache() -> dict[int, tuple[str, dict[str, str]]]:
    """What this transaction already read or wrote (a run's start reads the vault several times)."""
    return db.session.info.setdefault(_CACHE, {})


@event.listens_for(Session, "after_transaction_end")
def _forget(session: Session, transaction) -> None:
    """Decrypted values live no longer than the transaction (or savepoint) that read them."""
    if transaction.parent is None or transaction.nested:  # not a flush's subtransaction
        session.info.pop(_CACHE, None)
        session.info.pop(_ROWS, None)
        session.info.pop(_HELD, None)


def _changed(deployment_id: int) -> None:
    """The deployment's entry changed in this transaction: held() reads it again."""
    db.session.info.get(_HELD, {}).pop(deployment_id, None)


def _fernet() -> Fernet:
    key = current_app.config.get("CREDENTIAL_KEY")
    if not key:
        raise RuntimeError(
            "CREDENTIAL_KEY is not configured (run `flask setup` or set the variable)."
        )
    return Fernet(key.encode() if isinstance(key, str) else key)


def _ttl(ttl: timedelta | int | None) -> timedelta:
    if isinstance(ttl, timedelta):
        return ttl
    minutes = ttl if ttl is not None else current_app.config.get("CREDENTIAL_TTL_MINUTES", 240)
    return timedelta(minutes=minutes)


def _row(deployment_id: int, lock: bool = False) -> Credential | None:
    query = select(Credential).where(Credential.deployment_id == deployment_id)
    if lock:
        query = query.with_for_update()
    return db.session.scalar(query)


def _decrypt(row: Credential) -> dict[str, str]:
    try:
        return json.loads(_fernet().decrypt(row.secret))
    except InvalidToken as exc:
        raise VaultEmpty(
            "The stored credentials cannot be decrypted (CREDENTIAL_KEY changed?)."
        ) from exc


def store_secrets(
    deployment_id: int,
    username: str | None,
    secrets: dict[str, str],
    owner_id: int | None = None,
    ttl: timedelta | int | None = None,
    *,
    commit: bool = True,
) -> Credential:
    """Merge `secrets` into the deployment's encrypted entry (user name replaced when given); TTL restarts."""
    row = _row(deployment_id, lock=True)
    current = _decrypt(row) if row is not None and row.expires_at > utcnow() else {}
    merged = {**current, **{k: v for k, v in secrets.items() if v is not None}}
    if row is None:
        row = Credential(deployment_id=deployment_id, username=username or "", secret=b"")
        db.session.add(row)
    if username is not None:  # the WinRM credentials: who stored them and when (see `held`)
        row.username = username
        row.owner_id = owner_id if owner_id is not None else row.owner_id
        row.created_at = utcnow()
    elif row.owner_id is None:
        row.owner_id = owner_id
    row.secret = _fernet().encrypt(json.dumps(merged).encode())
    row.expires_at = utcnow() + _ttl(ttl)
    _cache()[deployment_id] = (row.username, merged)
    if username is not None and WINRM_PASSWORD in merged and row.username:
        # Just stored: no node can have refused them yet (what held() would read, without asking).
        db.session.info.setdefault(_HELD, {})[deployment_id] = Held(
            username=row.username,
            owner=_owner_name(row),
            stored_at=row.created_at,
            expires_at=row.expires_at,
        )
    else:
        _changed(deployment_id)
    if commit:
        db.session.commit()
    return row


def store_credentials(
    deployment_id: int,
    username: str,
    password: str,
    owner_id: int | None = None,
    ttl=None,
    *,
    commit=True,
) -> Credential:
    """The WinRM user name and password used for the deployment's remote actions."""
    return store_secrets(
        deployment_id, username, {WINRM_PASSWORD: password}, owner_id, ttl, commit=commit
    )


def merge_secrets(
    deployment_id: int, secrets: dict[str, str], owner_id=None, ttl=None, *, commit=True
) -> Credential:
    """Step secret fields (license key...) kept next to the WinRM credentials."""
    return store_secrets(deployment_id, None, secrets, owner_id, ttl, commit=commit)


def prime(deployment_id: int, row: Credential | None) -> None:
    """Note the deployment's vault row (None: nothing held) that the caller's query read with a
    join, so this transaction's next load_secrets decrypts it without a query of its own."""
    db.session.info.setdefault(_ROWS, {})[deployment_id] = row


def load_secrets(deployment_id: int) -> tuple[str, dict[str, str]]:
    """(user name, secrets) for a worker about to run an action; raises VaultEmpty when gone or expired."""
    if (held := _cache().get(deployment_id)) is not None:
        return held[0], dict(held[1])
    primed = db.session.info.get(_ROWS, {})
    if deployment_id in primed:
        return secrets_from(primed[deployment_id])
    return secrets_from(_row(deployment_id))


def secrets_from(row: Credential | None) -> tuple[str, dict[str, str]]:
    """load_secrets for a Credential row the caller already selected (None: nothing held)."""
    if row is None or row.expires_at <= utcnow():
        raise VaultEmpty(
            "No WinRM credentials are held for this deployment (expired or never entered)."
        )
    secrets = _decrypt(row)
    _cache()[row.deployment_id] = (row.username, secrets)
    return row.username, dict(secrets)


def secret_names(deployment_id: int) -> frozenset[str]:
    """Which secrets are held (names only), for pages and RunViews."""
    try:
        return frozenset(load_secrets(deployment_id)[1])
    except VaultEmpty:
        return frozenset()


def username(deployment_id: int) -> str | None:
    """The stored WinRM user name (not a secret), or None."""
    row = _row(deployment_id)
    return row.username if row is not None and row.expires_at > utcnow() else None


@dataclass(frozen=True)
class Held:
    """The WinRM credentials held for a deployment, as a page may show them (never the password)."""

    username: str
    owner: str | None
    stored_at: datetime
    expires_at: datetime
    refused_at: datetime | None = None  # a node refused them after they were stored
    refused_by: str | None = None  # that node

    @property
    def usable(self) -> bool:
        return self.refused_at is None


# A node refused the logon: HTTP 401 / SSPI (auth_failed, but not "a secret is missing"), or the
# scheduled task could not log on with the operator's password (task_run.ps1's 0x8007052E text).
_MISSING_SECRET = "Secret(s) %"  # noqa: S105 - a message pattern, not a password
_TASK_LOGON_REFUSED = "%user name or password is incorrect%"


def _logon_refused():
    """An action whose node refused the credentials' logon (not a secret missing from the vault)."""
    return or_(
        and_(
            NodeAction.error_category == errors.AUTH_FAILED,
            ~NodeAction.error_message.like(_MISSING_SECRET),
        ),
        NodeAction.error_message.like(_TASK_LOGON_REFUSED),
    )


def _refused(deployment_id: int, since: datetime) -> tuple[datetime, str] | None:
    """(when, node) of the newest logon refusal in the deployment's actions started at or after
    `since` (when the credentials were stored), or None."""
    refused = _logon_refused()
    row = db.session.execute(
        select(NodeAction.finished_at, NodeAction.started_at, NodeAction.node_name)
        .join(StepRun, StepRun.id == NodeAction.step_run_id)
        .where(
            StepRun.deployment_id == deployment_id,
            NodeAction.started_at >= since,
            NodeAction.status.in_(("failed", "succeeded", "cancelled", "interrupted")),
            refused,
        )
        .order_by(NodeAction.id.desc())
        .limit(1)
    ).first()
    found = (row[0] or row[1], row[2]) if row is not None else None
    # A Test connection that the node refused with these credentials counts as well.
    tested = db.session.execute(
        select(Event.created_at, Event.node_name, Event.payload)
        .where(
            Event.deployment_id == deployment_id,
            Event.kind == "connection.tested",
            Event.created_at >= since,
        )
        .order_by(Event.seq.desc())
        .limit(50)
    ).all()
    for at, node, payload in tested:
        if (payload or {}).get("category") == errors.AUTH_FAILED and not payload.get("ok"):
            if found is None or at > found[0]:
                found = (at, node)
            break
    return found


def held(deployment_id: int) -> Held | None:
    """The WinRM credentials held for the deployment (user name, who stored them, when, expiry,
    whether a node refused them since), or None when none are usable (never entered, expired).
    Read once per transaction: a run's start asks twice (the form, then the decision)."""
    memo = db.session.info.setdefault(_HELD, {})
    if deployment_id not in memo:
        memo[deployment_id] = _held(deployment_id)
    return memo[deployment_id]


def _owner_name(row: Credential) -> str | None:
    """Who stored the credentials (their user name), or None."""
    owner = db.session.get(User, row.owner_id) if row.owner_id is not None else None
    return owner.username if owner is not None else None


def _held(deployment_id: int) -> Held | None:
    row = _row(deployment_id)
    if row is None or row.expires_at <= utcnow():
        return None
    try:
        _, secrets = secrets_from(row)
    except VaultEmpty:
        return None
    if WINRM_PASSWORD not in secrets or not row.username:
        return None
    stored_at = row.created_at
    refused = _refused(deployment_id, stored_at)
    return Held(
        username=row.username,
        owner=_owner_name(row),
        stored_at=stored_at,
        expires_at=row.expires_at,
        refused_at=refused[0] if refused else None,
        refused_by=refused[1] if refused else None,
    )


def refusal(deployment_id: int) -> str | None:
    """Why the stored WinRM credentials may not start a run (none held, or nodes refused them:
    every one of them named), or None when they may."""
    current = held(deployment_id)
    if current is None:
        return "Enter the WinRM user name and password to run this step."
    if not current.usable:
        nodes = _refusing_nodes(deployment_id, current.stored_at) | {current.refused_by}
        return refused_message(replace(current, refused_by=_and_list(sorted(nodes - {None}))))
    return None


def _refusing_nodes(deployment_id: int, since: datetime) -> set[str]:
    """Every node that refused a logon with the credentials stored at `since`: in an action
    started since, or in a Test connection since (the refusals `_refused` finds the newest of)."""
    refused = _logon_refused()
    acted = db.session.scalars(
        select(NodeAction.node_name)
        .join(StepRun, StepRun.id == NodeAction.step_run_id)
        .where(
            StepRun.deployment_id == deployment_id,
            NodeAction.started_at >= since,
            NodeAction.status.in_(("failed", "succeeded", "cancelled", "interrupted")),
            refused,
        )
        .distinct()
    )
    tested = db.session.execute(
        select(Event.node_name, Event.payload)
        .where(
            Event.deployment_id == deployment_id,
            Event.kind == "connection.tested",
            Event.created_at >= since,
        )
        .order_by(Event.seq.desc())
        .limit(50)
    )
    failed = {
        node
        for node, payload in tested
        if (payload or {}).get("category") == errors.AUTH_FAILED and not payload.get("ok")
    }
    return set(acted) | failed


def _and_list(names: list[str]) -> str | None:
    """The names as a sentence lists them (AMS1; AMS1 and AMS2; AMS1, AMS2 and AMS3), or None."""
    if len(names) < 2:
        return names[0] if names else None
    return f"{', '.join(names[:-1])} and {names[-1]}"


def refused_message(current: Held) -> str:
    """What the operator reads when the stored credentials were refused."""
    return (
        f"{current.refused_by or 'A node'} refused the credentials of {current.username}: enter "
        "the WinRM user name and password again. Trying the same ones again would fail the same "
        "way, and against Active Directory it counts towards locking the account. If they are "
        "right and the cause is fixed on the node (account unlocked, authentication enabled), "
        "sign in once with Test connections: credentials that sign in there may be used again."
    )


def refused(deployment_id: int, username: str, password: str) -> bool:
    """Whether (username, password) are the held credentials a node refused since they were stored."""
    current = held(deployment_id)
    if current is None or current.usable:
        return False
    _, secrets = load_secrets(deployment_id)
    same_user = current.username.casefold() == (username or "").casefold()
    same_password = hmac.compare_digest(
        (secrets.get(WINRM_PASSWORD) or "").encode(), (password or "").encode()
    )
    return same_user and same_password


def wipe(deployment_id: int, *, commit: bool = True) -> None:
    """Forget everything held for the deployment."""
    _cache().pop(deployment_id, None)
    db.session.info.get(_ROWS, {}).pop(deployment_id, None)
    _changed(deployment_id)
    db.session.execute(delete(Credential).where(Credential.deployment_id == deployment_id))
    if commit:
        db.session.commit()


def forget(deployment_id: int, names: tuple[str, ...], *, commit: bool = True) -> None:
    """Drop some secrets (a step's, once it succeeded) and keep the others and their expiry."""
    row = _row(deployment_id, lock=True) if names else None
    if row is None:
        return
    try:
        held = _decrypt(row)
    except VaultEmpty:  # unreadable (CREDENTIAL_KEY changed): nothing in it can be used anyway
        wipe(deployment_id, commit=commit)
        return
    if not set(names) & held.keys():
        return
    kept = {k: v for k, v in held.items() if k not in names}
    row.secret = _fernet().encrypt(json.dumps(kept).encode())
    _cache()[deployment_id] = (row.username, kept)
    _changed(deployment_id)
    if commit:
        db.session.commit()


def wipe_expired(now: datetime | None = None) -> int:
    """Delete expired entries; returns how many (run by the beat schedule)."""
    _cache().clear()
    db.session.info.pop(_ROWS, None)
    db.session.info.pop(_HELD, None)
    result = db.session.execute(
        delete(Credential).where(Credential.expires_at <= (now or utcnow()))
    )
    db.session.commit()
    return result.rowcount or 0
