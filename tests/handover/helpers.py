"""Small builders shared by the issue 6 tests."""

from app.auth.cli import create_user
from app.deployments.service import create_deployment
from app.extensions import db
from app.models import User
from tests.conftest import PASSWORD, login

DEPLOYMENT = {
    "name": "Lab cluster",
    "domain_fqdn": "corp.example.test",
    "nodes": [
        {
            "name": "AMS1",
            "host": "127.0.0.1",
            "port": 55985,
            "transport": "http",
            "auth": "basic",
            "cert_validation": True,
        },
        {
            "name": "AMS2",
            "host": "localhost",
            "port": 55986,
            "transport": "http",
            "auth": "basic",
            "cert_validation": True,
        },
    ],
}


def user(app, username: str, role: str) -> int:
    """Create a user (idempotent); returns its id."""
    with app.app_context():
        existing = db.session.scalar(db.select(User).where(User.username == username))
        return existing.id if existing else create_user(username, PASSWORD, role).id


def deployment(app, owner: str, **overrides) -> int:
    """A new deployment created by `owner`; returns its id."""
    with app.app_context():
        creator = db.session.scalar(db.select(User).where(User.username == owner))
        return create_deployment(DEPLOYMENT | overrides, creator).id


def signed_in(app, username: str, role: str):
    """A fresh test client signed in as a (new) user."""
    user(app, username, role)
    client = app.test_client()
    response = login(client, username)
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return client
