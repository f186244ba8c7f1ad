"""Optional directory sign-in (LDAP or Active Directory) with ldap3; local accounts stay the default.

Enabled when LDAP_URL is set. The service account (LDAP_BIND_DN / LDAP_BIND_PASSWORD, or an
anonymous bind) finds the user under LDAP_USER_BASE with LDAP_USER_FILTER (`{username}` is replaced,
escaped); a bind as that DN proves the password. The role is the first entry of LDAP_GROUP_ROLE_MAP
("<group DN>=<role>;...") whose group lists the user (member/uniqueMember, or the user's memberOf).
No mapped group, no sign-in. The local User row is created or updated with that role on each sign-in
and has no usable password.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select

from app.auth.roles import ROLES
from app.extensions import db
from app.models import User

log = logging.getLogger(__name__)
DIRECTORY_HASH = "!ldap"


@dataclass(frozen=True)
class DirectoryUser:
    """What the directory said about a user who proved their password."""

    dn: str
    role: str


def parse_role_map(text: str) -> list[tuple[str, str]]:
    """'cn=a,dc=x=admin;cn=b,dc=x=reviewer' -> [(dn, role), ...] (DNs compared case-insensitively)."""
    pairs = []
    for entry in filter(None, (part.strip() for part in (text or "").split(";"))):
        dn, _, role = entry.rpartition("=")
        if role.strip() not in ROLES or not dn.strip():
            raise ValueError(f"LDAP_GROUP_ROLE_MAP entry {entry!r} is not '<group DN>=<role>'.")
        pairs.append((_norm(dn), role.strip()))
    return pairs


def _norm(dn: str) -> str:
    return ",".join(part.strip() for part in dn.strip().lower().split(","))


def enabled() -> bool:
    """True when LDAP_URL is configured."""
    return bool(current_app.config.get("LDAP_URL"))


def _connection(user: str | None, password: str | None):
    import ldap3

    cfg = current_app.config
    server = ldap3.Server(
        cfg["LDAP_URL"], get_info=ldap3.NONE, connect_timeout=cfg.get("LDAP_TIMEOUT_SECONDS", 5)
    )
    return ldap3.Connection(
        server, user=user, password=password, receive_timeout=cfg.get("LDAP_TIMEOUT_SECONDS", 5)
    )


def _find_user(username: str) -> tuple[str, list[str]] | None:
    """(DN, memberOf values) of the one entry matching the filter, via the service bind."""
    from ldap3.utils.conv import escape_filter_chars

    cfg = current_app.config
    conn = _connection(cfg.get("LDAP_BIND_DN") or None, cfg.get("LDAP_BIND_PASSWORD") or None)
    if not conn.bind():
        log.error("LDAP service bind failed: %s", conn.result.get("description"))
        return None
    try:
        flt = cfg["LDAP_USER_FILTER"].replace("{username}", escape_filter_chars(username))
        conn.search(cfg["LDAP_USER_BASE"], flt, attributes=["memberOf"])
        if len(conn.entries) != 1:
            return None
        entry = conn.entries[0]
        member_of = [str(v) for v in entry.memberOf.values] if "memberOf" in entry else []
        return entry.entry_dn, member_of
    finally:
        conn.unbind()


def _in_group(conn, group_dn: str, user_dn: str) -> bool:
    from ldap3 import BASE
    from ldap3.utils.conv import escape_filter_chars

    who = escape_filter_chars(user_dn)
    conn.search(group_dn, f"(|(member={who})(uniqueMember={who}))", search_scope=BASE)
    return bool(conn.entries)


def _role(conn, user_dn: str, member_of: list[str]) -> str | None:
    groups = {_norm(g) for g in member_of}
    for group_dn, role in parse_role_map(current_app.config.get("LDAP_GROUP_ROLE_MAP", "")):
        if group_dn in groups or _in_group(conn, group_dn, user_dn):
            return role
    return None


def authenticate(username: str, password: str) -> DirectoryUser | None:
    """Prove the password against the directory and map groups to a role; None when refused."""
    if not username or not password:
        return None
    found = _find_user(username)
    if found is None:
        return None
    dn, member_of = found
    conn = _connection(dn, password)
    if not conn.bind():
        return None
    try:
        role = _role(conn, dn, member_of)
    finally:
        conn.unbind()
    return DirectoryUser(dn, role) if role else None


def directory_login(username: str, password: str) -> User | None:
    """Sign-in through the directory: the local row mirrors the directory's role. None if refused."""
    local = db.session.scalar(select(User).where(User.username == username))
    if local is not None and local.password_hash != DIRECTORY_HASH:
        return None
    try:
        found = authenticate(username, password)
    except Exception:
        log.exception("LDAP sign-in failed for %s", username)
        return None
    if found is None:
        return None
    user = local or User(username=username, password_hash=DIRECTORY_HASH)
    user.role = found.role
    db.session.add(user)
    db.session.flush()
    return user if user.active else None
