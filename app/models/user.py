"""Accounts and roles."""

import contextlib
import functools
import hashlib
import hmac
import secrets
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from flask import current_app
from flask_login import UserMixin
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.auth.roles import role_allows
from app.extensions import db
from app.models.base import UTCDateTime, utcnow

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_urlsafe(16))


def check_dummy_password(password: str) -> None:
    """Verify against a throwaway hash, so that a sign-in as an unknown or directory account
    costs the same Argon2 work as one as a local account (no timing hint of who exists)."""
    with contextlib.suppress(VerifyMismatchError, InvalidHashError):
        _hasher.verify(_dummy_hash(), password)


class User(UserMixin, db.Model):
    """A person who signs in; the role decides what they may do."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="operator")
    active: Mapped[bool] = mapped_column(default=True)
    # Bumped when the account is disabled: its sessions stay ended after it is enabled again.
    session_epoch: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def is_active(self) -> bool:
        return self.active

    def get_id(self) -> str:
        """What a signed-in session holds (Flask-Login): the id and `session_mark`, so that a new
        password (set by the user or reset by an admin) or disabling the account ends the
        account's sessions."""
        return f"{self.id}:{self.session_mark()}"

    def session_mark(self) -> str:
        """A keyed fingerprint of the password hash and the session epoch (it reveals nothing of
        either); it changes with them. Epoch 0 keeps the mark sessions had before epochs existed."""
        secret = str(current_app.config["SECRET_KEY"]).encode()
        key = hmac.new(secret, b"amsw session mark", hashlib.sha256).digest()  # this use's own key
        material = self.password_hash
        if self.session_epoch:
            material = f"{material}:{self.session_epoch}"
        return hmac.new(key, material.encode(), hashlib.sha256).hexdigest()[:32]

    def set_password(self, password: str) -> None:
        """Hash with Argon2id."""
        self.password_hash = _hasher.hash(password)

    def has_local_password(self) -> bool:
        """False for directory accounts, whose password only the directory checks."""
        return self.password_hash.startswith("$argon2")

    def check_password(self, password: str) -> bool:
        """Constant-time verification; never raises for a bad hash."""
        try:
            return _hasher.verify(self.password_hash, password)
        except (VerifyMismatchError, InvalidHashError):
            return False

    def can(self, permission: str) -> bool:
        """Role check used by views and templates."""
        return role_allows(self.role, permission)
