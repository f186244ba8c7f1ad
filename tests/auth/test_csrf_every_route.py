"""Every state-changing route of the screens refuses a request without its CSRF token, and the
token-authenticated API (exempt from CSRF by design) refuses a signed-in browser's cookie alone.

The routes come from app.url_map, so a new write route without CSRF fails here.
"""

import pytest

from app.api.tokens import create_token
from app.extensions import db
from app.models import Deployment, User
from tests.conftest import csrf_token
from tests.handover.helpers import deployment, signed_in, user

WRITE = {"POST", "PUT", "PATCH", "DELETE"}
ADMIN = "csrf-admin"
NODES = [{"name": f"n{i}", "host": f"10.0.0.{i}"} for i in (1, 2)]
API_BODY = {"name": "Cookie only", "domain_fqdn": "corp.example.com", "nodes": NODES}


def _write_rules(app, api: bool) -> list:
    """(rule, method) for every write route, of the API blueprint or of everything else."""
    rules = [r for r in app.url_map.iter_rules() if (r.endpoint.split(".")[0] == "api") == api]
    return sorted(((r, m) for r in rules for m in r.methods & WRITE), key=lambda p: p[0].rule)


@pytest.fixture
def values(app) -> dict:
    """Real rows for every URL parameter: a deployment, another user, an API token."""
    admin_id = user(app, ADMIN, "admin")
    target_id = user(app, "csrf-target", "operator")
    with app.app_context():
        token, _ = create_token(db.session.get(User, admin_id), "csrf test")
        token_id = token.id
    return {
        "deployment_id": deployment(app, ADMIN),
        "step_key": "prerequisites",
        "user_id": target_id,
        "token_id": token_id,
    }


def _url(rule, values: dict) -> str:
    return rule.build({name: values[name] for name in rule.arguments})[1]


def _is_csrf_refusal(response) -> bool:
    """Flask-WTF's refusal, not a form that re-renders with 400 for its own errors."""
    return response.status_code == 400 and b"The CSRF token is missing." in response.data


def test_the_route_lists_are_complete(app):
    browser = {r.endpoint for r, _ in _write_rules(app, api=False)}
    api = {r.endpoint for r, _ in _write_rules(app, api=True)}
    assert {"auth.login", "deployments.create", "wizard.run", "admin.new_user"} <= browser
    assert {"api.create", "api.run", "api.put_inputs"} <= api
    assert not browser & api


def test_every_write_route_refuses_a_request_without_csrf(app, values):
    client = signed_in(app, ADMIN, "admin")
    accepted = []
    for rule, method in _write_rules(app, api=False):
        response = client.open(_url(rule, values), method=method, data={})
        if not _is_csrf_refusal(response):
            accepted.append(f"{method} {rule.rule} -> {response.status_code}")
    assert not accepted, f"write routes that did not refuse a missing CSRF token: {accepted}"


def test_the_same_requests_with_a_valid_token_get_past_csrf(app, values):
    refused = []
    for rule, method in _write_rules(app, api=False):
        client = signed_in(app, ADMIN, "admin")  # afresh: logout or a role change ends a session
        data = {"csrf_token": csrf_token(client, "/deployments/new")}
        response = client.open(_url(rule, values), method=method, data=data)
        if _is_csrf_refusal(response) or b"CSRF token" in response.data:
            refused.append(f"{method} {rule.rule} -> {response.status_code}")
    assert not refused, f"refused for CSRF with a valid token: {refused}"


def _deployments(app) -> int:
    with app.app_context():
        return db.session.scalar(db.select(db.func.count(Deployment.id)))


def test_the_api_refuses_a_signed_in_browsers_cookie_without_a_token(app, values):
    client = signed_in(app, ADMIN, "admin")
    headers = {"X-CSRFToken": csrf_token(client, "/deployments/new")}  # even with CSRF's token
    before = _deployments(app)
    for rule, method in _write_rules(app, api=True):
        response = client.open(_url(rule, values), method=method, json=API_BODY, headers=headers)
        assert response.status_code == 401, f"{method} {rule.rule} -> {response.status_code}"
    assert _deployments(app) == before


def test_the_api_accepts_the_same_requests_with_a_bearer_token(app, values):
    with app.app_context():
        _, plaintext = create_token(
            db.session.scalar(db.select(User).filter_by(username=ADMIN)), "t"
        )
    client = app.test_client()  # no cookie at all
    headers = {"Authorization": f"Bearer {plaintext}"}
    codes = {}
    for rule, method in _write_rules(app, api=True):
        response = client.open(_url(rule, values), method=method, json=API_BODY, headers=headers)
        codes[rule.endpoint] = response.status_code
    assert 401 not in codes.values(), codes
    assert codes["api.create"] == 201  # the body the cookie could not get accepted is valid
