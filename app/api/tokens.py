"""Personal API tokens: create (plaintext returned once), revoke, and resolve a bearer header.

A token reads `amsw_<prefix>_<secret>`. Only its SHA-256 hash is stored; the prefix is kept in clear so
the owner can tell tokens apart. A token acts as its user with the user's role at the time of each call,
so demoting a user narrows every token they hold.
"""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select

from app.extensions import db
from app.models import ApiToken, User, utcnow

TOKEN_PREFIX = "amsw_"  # noqa: S105 - a public marker, not a secret
MAX_HEADER = 200


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(user: User, name: str) -> tuple[ApiToken, str]:
    """A new token for `user`; returns the row and the plaintext, which is never stored."""
    prefix = secrets.token_hex(4)
    plaintext = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiToken(user_id=user.id, name=name, prefix=prefix, token_hash=hash_token(plaintext))
    db.session.add(row)
    db.session.commit()
    return row, plaintext


def user_tokens(user: User) -> list[ApiToken]:
    """The user's tokens, active first, newest first."""
    rows = db.session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.created_at.desc())
    ).all()
    return sorted(rows, key=lambda t: t.revoked_at is not None)


def revoke_token(user: User, token_id: int) -> ApiToken | None:
    """Revoke one of the user's own tokens; None when it is not theirs."""
    row = db.session.get(ApiToken, token_id)
    if row is None or row.user_id != user.id:
        return None
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        db.session.commit()
    return row


def bearer_value(header: str | None) -> str | None:
    """The token from an `Authorization: Bearer <token>` header, or None."""
    if not header or len(header) > MAX_HEADER:
        return None
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value.startswith(TOKEN_PREFIX):
        return None
    return value


def resolve(header: str | None) -> ApiToken | None:
    """The active token of an active user named by the header (its last use is stamped)."""
    value = bearer_value(header)
    if value is None:
        return None
    row = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(value)))
    if row is None or row.revoked_at is not None or not row.user.active:
        return None
    row.last_used_at = utcnow()
    db.session.commit()
    return row
