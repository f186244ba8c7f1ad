"""Fixtures for the API tests: tokens per role, a JSON client, a deployment to work on, and for
the end-to-end tests a client on the real worker's database (lab_api)."""

import pytest

from app.api.tokens import create_token
from app.extensions import db
from app.models import User
from tests.execution.harness import (  # noqa: F401 - fixtures
    exec_app,
    exec_ctx,
    exec_db_url,
    worker,
)


@pytest.fixture
def make_token(app, make_user):
    """Create a user with a role and a token for them; returns the plaintext token."""

    def make(role: str = "admin", username: str | None = None) -> str:
        name = make_user(username or f"api-{role}", role)
        with app.app_context():
            user = db.session.scalar(db.select(User).where(User.username == name))
            _, plaintext = create_token(user, f"{role} test token")
        return plaintext

    return make


@pytest.fixture
def token(make_token):
    """An admin's token."""
    return make_token("admin")


@pytest.fixture
def api(client, token):
    """A test client that sends the admin token and JSON."""
    return ApiClient(client, token)


class ApiClient:
    """Thin wrapper: every call carries `Authorization: Bearer <token>`."""

    def __init__(self, client, token: str) -> None:
        self.client = client
        self.token = token

    def _headers(self, extra=None):
        return {"Authorization": f"Bearer {self.token}", **(extra or {})}

    def get(self, path, **kw):
        return self.client.get(path, headers=self._headers(kw.pop("headers", None)), **kw)

    def post(self, path, json=None, **kw):
        return self.client.post(
            path, json=json, headers=self._headers(kw.pop("headers", None)), **kw
        )

    def put(self, path, json=None, **kw):
        return self.client.put(
            path, json=json, headers=self._headers(kw.pop("headers", None)), **kw
        )


DEPLOYMENT = {
    "name": "API lab",
    "domain_fqdn": "corp.example.com",
    "nodes": [
        {"name": "node1", "host": "10.0.0.1"},
        {"name": "node2", "host": "10.0.0.2"},
        {"name": "node3", "host": "10.0.0.3"},
    ],
}


@pytest.fixture
def deployment_id(api):
    """A deployment created through the API."""
    response = api.post("/api/v1/deployments", json=DEPLOYMENT)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


@pytest.fixture
def lab_api(exec_ctx, worker):  # noqa: F811 - fixtures imported from the harness
    """`call(method, path, body, expect)`: the JSON API on the real worker's database, as an admin
    with a token; asserts the status code and returns the JSON body."""
    user = User(username="api-e2e", role="admin")
    user.set_password("not-used-here")
    db.session.add(user)
    db.session.commit()
    _, token = create_token(user, "e2e")
    client = exec_ctx.test_client()
    headers = {"Authorization": f"Bearer {token}"}

    def call(method: str, path: str, body=None, expect: int | tuple = 200):
        response = client.open(f"/api/v1{path}", method=method, json=body, headers=headers)
        allowed = expect if isinstance(expect, tuple) else (expect,)
        assert response.status_code in allowed, (method, path, response.get_json())
        db.session.remove()
        return response.get_json()

    return call
