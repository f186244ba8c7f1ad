"""Roles and what each may do; plain data so every layer can ask."""

ROLES = ("admin", "operator", "helpdesk", "reviewer")

PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset({"view", "drive", "create", "take_over", "manage_users", "export"}),
    "operator": frozenset({"view", "drive", "create", "export"}),
    "helpdesk": frozenset({"view", "drive", "take_over", "export"}),
    "reviewer": frozenset({"view", "export"}),
}


def role_allows(role: str, permission: str) -> bool:
    """True when the role grants the permission."""
    return permission in PERMISSIONS.get(role, frozenset())
