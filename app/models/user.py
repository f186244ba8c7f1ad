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

# OWASP's smallest Argon2id setting (19 MiB, two passes, one lane): weaker settings are logged.
OWASP_FLOOR = {"memory_kib": 19_456, "time_cost": 2}


def password_hasher(config) -> PasswordHasher:
    """The Argon2id hasher of these settings (PASSWORD_HASH_*); ValueError names a bad one."""
    return _hasher_for(
        int(config["PASSWORD_HASH_TIME_COST"]),
        int(config["PASSWORD_HASH_MEMORY_KIB"]),
        int(config["PASSWORD_HASH_PARALLELISM"]),
    )


@functools.cache
def _hasher_for(time_cost: int, memory_kib: int, parallelism: int) -> PasswordHasher:
    if time_cost < 1 or parallelism < 1:
        raise ValueError("PASSWORD_HASH_TIME_COST and PASSWORD_HASH_PARALLELISM must be 1 or more.")
    if memory_kib < 8 * parallelism:
        raise ValueError("PASSWORD_HASH_MEMORY_KIB must be at least 8 x PASSWORD_HASH_PARALLELISM.")
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)


def _hasher() -> PasswordHasher:
    return password_hasher(current_app.config)


@functools.cache
def _dummy_hash(hasher: PasswordHasher) -> str:
    return hasher.hash(secrets.token_urlsafe(16))


def check_dummy_password(password: str) -> None:
    """Verify against a throwaway hash made with the same settings, so that a sign-in as an
    unknown or directory account costs the same Argon2 work as one as a local account (no timing
    hint of who exists)."""
    hasher = _hasher()
    with contextlib.suppress(VerifyMismatchError, InvalidHashError):
        hasher.verify(_dummy_hash(hasher), password)


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
        """Hash with Argon2id (the app's PASSWORD_HASH_* settings; an existing hash keeps the
        settings it was made with, which verification reads from it)."""
        self.password_hash = _hasher().hash(password)

    def has_local_password(self) -> bool:
        """False for directory accounts, whose password only the directory checks."""
        return self.password_hash.startswith("$argon2")

    def check_password(self, password: str) -> bool:
        """Constant-time verification; never raises for a bad hash."""
        try:
            return _hasher().verify(self.password_hash, password)
        except (VerifyMismatchError, InvalidHashError):
            return False

    def can(self, permission: str) -> bool:
        """Role check used by views and templates."""
        return role_allows(self.role, permission)
