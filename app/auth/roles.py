"""Roles and what each may do; plain data so every layer can ask."""

ROLES = ("admin", "operator", "helpdesk", "reviewer")

# view: watch deployments and read history; create: start deployments; drive: run steps of one's own
# deployments; drive_any: drive anyone's; take_over: take the lease from the current driver; export:
# note: add hand-over notes; export: download reports; audit: read the audit trail; manage_users: accounts and settings.
PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset(
        {
            "view",
            "drive",
            "drive_any",
            "create",
            "take_over",
            "note",
            "manage_users",
            "export",
            "audit",
        }
    ),
    "operator": frozenset({"view", "drive", "create", "note", "export"}),
    "helpdesk": frozenset({"view", "drive", "drive_any", "take_over", "note", "export"}),
    "reviewer": frozenset({"view", "export", "audit"}),
}


def role_allows(role: str, permission: str) -> bool:
    """True when the role grants the permission."""
    return permission in PERMISSIONS.get(role, frozenset())
