"""WinRM credentials and step secrets, Fernet-encrypted with CREDENTIAL_KEY, kept only while work is pending.

One Credential row per deployment holds the user name (not a secret) and one encrypted JSON object with every
secret: the WinRM password under WINRM_PASSWORD and step secrets (e.g. a license key) under their field names.
Nothing is stored in clear; rows expire after CREDENTIAL_TTL_MINUTES and are wiped when the deployment ends.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from cryptography.fernet import Fernet, InvalidToken
from flask import current_app
from sqlalchemy import delete, event, select
from sqlalchemy.orm import Session

from app.extensions import db
from app.models import Credential, utcnow

WINRM_PASSWORD = "winrm_password"  # noqa: S105 - the vault entry name, not a password
WINRM_USERNAME = "winrm_username"  # offered to scripts that run a task as the operator


_CACHE = "amsw_vault"  # session.info: {deployment_id: (username, secrets)} for one transaction
_ROWS = "amsw_vault_rows"  # session.info: {deployment_id: Credential row or None} read by a join


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
    if username is not None:
        row.username = username
    row.owner_id = owner_id if owner_id is not None else row.owner_id
    row.secret = _fernet().encrypt(json.dumps(merged).encode())
    row.expires_at = utcnow() + _ttl(ttl)
    _cache()[deployment_id] = (row.username, merged)
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


def wipe(deployment_id: int, *, commit: bool = True) -> None:
    """Forget everything held for the deployment."""
    _cache().pop(deployment_id, None)
    db.session.info.get(_ROWS, {}).pop(deployment_id, None)
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
    if commit:
        db.session.commit()


def wipe_expired(now: datetime | None = None) -> int:
    """Delete expired entries; returns how many (run by the beat schedule)."""
    _cache().clear()
    db.session.info.pop(_ROWS, None)
    result = db.session.execute(
        delete(Credential).where(Credential.expires_at <= (now or utcnow()))
    )
    db.session.commit()
    return result.rowcount or 0
