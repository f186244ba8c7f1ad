"""Fixtures for the API tests: tokens per role, a JSON client, and a deployment to work on."""

import pytest

from app.api.tokens import create_token
from app.extensions import db
from app.models import User


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
