"""Every route x every role (and anonymous): allowed or refused exactly as the table says.

A route missing from EXPECTED fails the test: add it with the permission it needs.
"""

from app.auth.roles import ROLES, role_allows
from app.extensions import db
from app.models import User
from tests.handover.helpers import deployment, signed_in, user

# endpoint -> (permission for GET, permission for state-changing methods).
# None: public. "login": any signed-in user. "drive" on a deployment: its creator or drive_any.
EXPECTED = {
    "static": (None, None),
    "auth.login": (None, None),
    "auth.favicon": (None, None),
    "api-docs.openapi_json": (None, None),
    "auth.logout": ("view", "view"),
    "auth.change_password": ("view", "view"),
    "deployments.index": ("view", "view"),
    "deployments.create": ("create", "create"),
    "deployments.edit": ("drive", "drive"),
    "deployments.connections": ("drive", "drive"),
    "wizard.resume": ("view", "view"),
    "wizard.step": ("view", "drive"),
    "wizard.run": ("drive", "drive"),
    "wizard.cancel": ("drive", "drive"),
    "wizard.decide": ("drive", "drive"),
    "wizard.note": ("note", "note"),
    "events.history": ("view", "view"),
    "events.stream": ("view", "view"),
    "handover.attention": ("view", "view"),
    "handover.resume": ("view", "drive"),
    "handover.take": ("take_over", "take_over"),
    "handover.ping": ("view", "view"),
    "handover.note": ("note", "note"),
    "history.index": ("view", "view"),
    "history.export_csv": ("export", "export"),
    "history.detail": ("view", "view"),
    "history.report": ("export", "export"),
    "history.export_json": ("export", "export"),
    "history.dashboard": ("view", "view"),
    "history.audit": ("audit", "audit"),
    "api_ui.tokens": ("view", "view"),
    "api_ui.create": ("view", "view"),
    "api_ui.revoke": ("view", "view"),
    "api_ui.docs": ("view", "view"),
    "api.list_all": ("view", "view"),
    "api.create": ("create", "create"),
    "api.get_one": ("view", "view"),
    "api.status": ("view", "view"),
    "api.plan": ("view", "view"),
    "api.put_inputs": ("drive", "drive"),
    "api.run": ("drive", "drive"),
    "api.cancel": ("drive", "drive"),
    "api.decide": ("drive", "drive"),
    "api.events": ("view", "view"),
    "api.stream": ("view", "view"),
    "api.history": ("view", "view"),
    "api.export": ("export", "export"),
    "api.deployment_runbook": ("export", "export"),
    "api.step_runbook": ("export", "export"),
    "runbook.deployment_runbook": ("export", "export"),
    "runbook.step_runbook": ("export", "export"),
    "admin.users": ("manage_users", "manage_users"),
    "admin.new_user": ("manage_users", "manage_users"),
    "admin.change_role": ("manage_users", "manage_users"),
    "admin.disable": ("manage_users", "manage_users"),
    "admin.enable": ("manage_users", "manage_users"),
    "admin.reset_password": ("manage_users", "manage_users"),
}
WRITE = {"POST", "PUT", "PATCH", "DELETE"}
OWNER = "op-owner"  # the operator who created the deployment under test


def allowed(role: str | None, permission: str | None) -> bool:
    if permission is None:
        return True
    if role is None:
        return False
    return permission == "login" or role_allows(role, permission)


def _url(rule, dep_id: int) -> str:
    values = {
        "deployment_id": dep_id,
        "step_key": "prerequisites",
        "token_id": 999999,
        "user_id": 999999,
        "filename": "css/app.css",
    }
    return (
        rule.rule if not rule.arguments else rule.build({k: values[k] for k in rule.arguments})[1]
    )


def _refused(response, is_api: bool) -> bool:
    if response.status_code in (401, 403):
        return True
    location = response.headers.get("Location", "")
    return response.status_code == 302 and "/login?next=" in location and not is_api


def test_every_route_is_in_the_table(app):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    missing = sorted(endpoints - set(EXPECTED))
    assert not missing, f"routes without an expected permission: {missing}"
    stale = sorted(set(EXPECTED) - endpoints)
    assert not stale, f"table lists routes that no longer exist: {stale}"


def test_views_declare_the_permission_the_table_expects(app):
    for endpoint, expected in EXPECTED.items():
        declared = getattr(app.view_functions[endpoint], "required_permissions", (None, None))
        if expected == ("login", "login"):
            continue
        assert tuple(declared) == expected, endpoint


def _clients(app):
    from app.api.tokens import create_token

    clients = {None: (app.test_client(), None)}
    for role in ROLES:
        name = OWNER if role == "operator" else f"u-{role}"
        client = signed_in(app, name, role)
        with app.app_context():
            _, token = create_token(
                db.session.scalar(db.select(User).where(User.username == name)), "t"
            )
        clients[role] = (client, token)
    return clients


def test_each_role_is_allowed_or_refused_on_every_route(app, monkeypatch):
    user(app, OWNER, "operator")
    dep_id = deployment(app, OWNER)
    clients = _clients(app)
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", False)
    rules = sorted(app.url_map.iter_rules(), key=lambda r: r.endpoint == "auth.logout")
    failures = []
    for rule in rules:
        get_perm, write_perm = EXPECTED[rule.endpoint]
        url, is_api = _url(rule, dep_id), rule.endpoint.startswith("api.")
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            permission = write_perm if method in WRITE else get_perm
            for role, (client, token) in clients.items():
                headers = {"Authorization": f"Bearer {token}"} if token and is_api else {}
                kwargs = {"json": {}} if is_api and method in WRITE else {"data": {}}
                response = client.open(url, method=method, headers=headers, **kwargs)
                refused = _refused(response, is_api)
                response.close()
                if refused == allowed(role, permission):
                    failures.append(f"{method} {url} as {role}: {response.status_code}")
    assert not failures, "\n".join(failures)


def test_operator_cannot_drive_someone_elses_deployment(app, monkeypatch):
    user(app, OWNER, "operator")
    dep_id = deployment(app, OWNER)
    other = signed_in(app, "op-other", "operator")
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", False)
    assert other.get(f"/deployments/{dep_id}/steps/prerequisites").status_code == 200
    response = other.post(f"/deployments/{dep_id}/steps/prerequisites/run", data={})
    assert response.status_code == 403
