"""A new deployment asks which topology (issue 20, point 6): the failover cluster or the
load-balanced farm, each with a line saying when to choose it. The choice decides the guide, the
steps and the sidebar; it cannot be changed afterwards, and an unknown guide is refused."""

import re

import pytest
from sqlalchemy import select

from app.extensions import db
from app.guides import CLUSTER_GUIDE, LOAD_BALANCER_GUIDE
from app.models import Deployment
from tests.conftest import csrf_token, login

NEW = {
    "name": "Farm one",
    "domain_fqdn": "corp.example.test",
    "nodes-0-name": "AMS1",
    "nodes-0-host": "10.0.0.1",
    "nodes-0-port": "5985",
    "nodes-0-transport": "http",
    "nodes-0-auth": "ntlm",
    "nodes-1-name": "AMS2",
    "nodes-1-host": "10.0.0.2",
    "nodes-1-port": "5985",
    "nodes-1-transport": "http",
    "nodes-1-auth": "ntlm",
}


@pytest.fixture
def admin(client, make_user):
    login(client, make_user("alice", "admin"))
    return client


def _created(app) -> Deployment:
    with app.app_context():
        deployment = db.session.scalars(select(Deployment).order_by(Deployment.id.desc())).first()
        db.session.expunge(deployment)
        return deployment


def test_the_form_offers_every_guide_with_its_explanation(admin):
    html = admin.get("/deployments/new").get_data(as_text=True)
    for guide in (CLUSTER_GUIDE, LOAD_BALANCER_GUIDE):  # other tests may register test guides
        assert f'value="{guide.key}"' in html
        assert guide.title in html
        assert guide.choice and guide.choice.split(":")[0] in html
    assert "Recommended for Access Manager 3.x" in html


def test_choosing_the_load_balancer_gives_its_steps(app, admin):
    data = {
        **NEW,
        "guide_key": "ams-load-balancer",
        "csrf_token": csrf_token(admin, "/deployments/new"),
    }
    response = admin.post("/deployments/new", data=data)
    assert response.status_code == 302, response.get_data(as_text=True)
    created = _created(app)
    assert created.guide_key == "ams-load-balancer"
    page = admin.get(f"/deployments/{created.id}/steps/prerequisites").get_data(as_text=True)
    for title in ("SQL", "farm"):
        assert re.search(title, page, re.IGNORECASE), title
    assert "Generic Service" not in page


def test_without_a_choice_the_failover_cluster_is_kept(app, admin):
    data = {**NEW, "csrf_token": csrf_token(admin, "/deployments/new")}
    assert admin.post("/deployments/new", data=data).status_code == 302
    assert _created(app).guide_key == "ams-failover-cluster"


def test_an_unknown_guide_is_refused_and_nothing_saved(app, admin):
    data = {**NEW, "guide_key": "ams-anything", "csrf_token": csrf_token(admin, "/deployments/new")}
    response = admin.post("/deployments/new", data=data)
    assert response.status_code == 200
    assert "Not a valid choice" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(Deployment)) == 0


def test_editing_never_changes_the_guide(app, admin):
    data = {
        **NEW,
        "guide_key": "ams-load-balancer",
        "csrf_token": csrf_token(admin, "/deployments/new"),
    }
    admin.post("/deployments/new", data=data)
    created = _created(app)
    edit = f"/deployments/{created.id}/edit"
    page = admin.get(edit).get_data(as_text=True)
    assert "Access Manager behind a load balancer (chosen when the deployment was created)" in page
    changed = {**NEW, "name": "Farm renamed", "guide_key": "ams-failover-cluster"}
    response = admin.post(edit, data={**changed, "csrf_token": csrf_token(admin, edit)})
    assert response.status_code == 302, response.get_data(as_text=True)
    after = _created(app)
    assert (after.name, after.guide_key) == ("Farm renamed", "ams-load-balancer")
