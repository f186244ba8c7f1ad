"""The new-deployment form as the screen posts it (two lab nodes over HTTP), for the page tests."""

from app.extensions import db
from app.models import Deployment
from tests.conftest import csrf_token

NODES = {
    "name": "Lab cluster",
    "domain_fqdn": "corp.example.test",
    "nodes-0-name": "AMS1",
    "nodes-0-host": "127.0.0.1",
    "nodes-0-port": "55985",
    "nodes-0-transport": "http",
    "nodes-0-auth": "basic",
    "nodes-1-name": "AMS2",
    "nodes-1-host": "localhost",
    "nodes-1-port": "55986",
    "nodes-1-transport": "http",
    "nodes-1-auth": "basic",
}


def create(client, **overrides) -> object:
    """Post the new-deployment form (NODES with `overrides`); returns the response."""
    data = NODES | overrides
    data["csrf_token"] = csrf_token(client, "/deployments/new")
    return client.post("/deployments/new", data=data)


def deployment_id(app) -> int:
    """The newest deployment's id."""
    with app.app_context():
        return db.session.scalar(db.select(Deployment.id).order_by(Deployment.id.desc()))
