"""Account administration: the rules that keep an admin in charge, and their audit records.

Each function validates first, commits the change, then appends one audit record (never a
password). A refused change raises AdminError with a message for the admin and saves nothing.
"""

from __future__ import annotations

import re

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.audit.service import record
from app.auth.ldap import DIRECTORY_HASH
from app.auth.roles import ROLES
from app.extensions import db
from app.models import User

MIN_PASSWORD = 12
MAX_PASSWORD = 1024
USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
USERNAME_RULE = (
    "1 to 64 letters, digits, dots, dashes or underscores, starting with a letter or digit"
)


class AdminError(ValueError):
    """A refused change; the message is shown to the admin as it is."""


def source(user: User) -> str:
    """'directory' for accounts that sign in through LDAP, else 'local'."""
    return "directory" if user.password_hash == DIRECTORY_HASH else "local"


def list_users() -> list[User]:
    """Every account, by name."""
    return list(db.session.scalars(select(User).order_by(User.username)))


def check_username(username: str) -> str:
    """The stripped name, or AdminError."""
    name = (username or "").strip()
    if not USERNAME_RE.match(name):
        raise AdminError(f"Username must be {USERNAME_RULE}.")
    return name


def check_role(role: str) -> str:
    """The role, or AdminError naming the ones that exist."""
    if role not in ROLES:
        raise AdminError(f"Unknown role {role!r}; choose one of {', '.join(ROLES)}.")
    return role


def check_password(password: str) -> str:
    """The password, or AdminError when it is too short or too long."""
    if len(password or "") < MIN_PASSWORD:
        raise AdminError(f"The password must be at least {MIN_PASSWORD} characters long.")
    if len(password) > MAX_PASSWORD:
        raise AdminError(f"The password must be at most {MAX_PASSWORD} characters long.")
    return password


def _name_taken(username: str) -> bool:
    query = select(User.id).where(func.lower(User.username) == username.lower())
    return db.session.scalar(query) is not None


def create_local_user(username: str, role: str, password: str) -> User:
    """A new local account with an Argon2-hashed initial password."""
    name, role = check_username(username), check_role(role)
    check_password(password)
    if _name_taken(name):
        raise AdminError(f"A user named {name!r} already exists.")
    user = User(username=name, role=role, active=True)
    user.set_password(password)
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise AdminError(f"A user named {name!r} already exists.") from None
    record("user.created", name, {"role": role, "source": "local"})
    return user


def _other_active_admins(user: User) -> int:
    """Active admins besides `user`; locks every active admin row in id order (PostgreSQL), so two
    admins disabling each other at once are serialised and the second sees the first's change."""
    query = select(User.id).where(User.role == "admin", User.active.is_(True)).order_by(User.id)
    return sum(1 for uid in db.session.scalars(query.with_for_update()) if uid != user.id)


def _keep_an_admin(user: User, actor: User, what: str) -> None:
    """Refuse to take admin rights from oneself or from the last active admin."""
    if user.id == actor.id:
        raise AdminError(f"You cannot {what} your own account; ask another admin.")
    if user.role == "admin" and user.active and _other_active_admins(user) == 0:
        raise AdminError(f"{user.username} is the last active admin and cannot be {what}d.")


def change_role(user: User, role: str, actor: User) -> bool:
    """Give `user` a new role; False when it already had it."""
    check_role(role)
    if source(user) == "directory":
        raise AdminError(
            f"{user.username} signs in through the directory; their role comes from directory "
            "groups. Change their group membership instead."
        )
    if role == user.role:
        return False
    if role != "admin":
        _keep_an_admin(user, actor, "demote")
    previous, user.role = user.role, role
    db.session.commit()
    record("user.role_changed", user.username, {"from": previous, "to": role})
    return True


def set_active(user: User, active: bool, actor: User) -> bool:
    """Enable or disable an account; False when it was already so."""
    if user.active == active:
        return False
    if not active:
        _keep_an_admin(user, actor, "disable")
        user.session_epoch = (user.session_epoch or 0) + 1  # enabling again revives no session
    user.active = active
    db.session.commit()
    record("user.enabled" if active else "user.disabled", user.username, {"role": user.role})
    return True


def reset_password(user: User, password: str) -> None:
    """Set a new password on a local account (the password is never recorded)."""
    if source(user) == "directory":
        raise AdminError(
            f"{user.username} signs in through the directory; reset the password there."
        )
    check_password(password)
    user.set_password(password)
    db.session.commit()
    record("user.password_reset", user.username)
