"""The deployment's Kerberos KDC list: normalised, or refused with the item at fault; the form
explains which authentication to choose; Test connection is offered from every step page."""

import pytest

from app import validators
from app.extensions import db
from app.models import Deployment, Event
from tests.conftest import csrf_token
from tests.deployment_form import NODES, deployment_id


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("", None),
        ("dc1.corp.example.com", "dc1.corp.example.com:88"),
        (
            "DC1.corp.example.com:88, 10.0.0.5:1088 dc1.corp.example.com",
            "dc1.corp.example.com:88, 10.0.0.5:1088",
        ),
    ],
)
def test_kdc_list_is_normalised(typed, stored):
    assert validators.kdc_list(typed) == stored


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("dc1.corp.example.com:99999", "outside 1-65535"),
        ("fe80::1", "IPv6"),
        ("dc_1.corp", "not a valid host name"),
        ("dc1\x00", "KDC"),
        (",".join(f"dc{i}.corp" for i in range(11)), "At most 10"),
    ],
)
def test_bad_kdc_lists_are_refused(typed, message):
    with pytest.raises(ValueError, match=message):
        validators.kdc_list(typed)


def test_form_stores_the_kdcs_and_explains_the_choices(admin_client, app):
    page = admin_client.get("/deployments/new").get_data(as_text=True)
    assert "Which authentication to choose" in page and "Enable-WSManCredSSP" in page
    data = NODES | {"kerberos_kdcs": "dc1.corp.example.test", "nodes-0-auth": "kerberos"}
    data["csrf_token"] = csrf_token(admin_client, "/deployments/new")
    assert admin_client.post("/deployments/new", data=data).status_code == 302
    with app.app_context():
        deployment = db.session.get(Deployment, deployment_id(app))
        assert deployment.kerberos_kdcs == "dc1.corp.example.test:88"
        assert deployment.nodes[0].auth == "kerberos"
        dep_id = deployment.id
    step = admin_client.get(f"/deployments/{dep_id}/steps/prerequisites").get_data(as_text=True)
    assert f"/deployments/{dep_id}/connections" in step


def test_bad_kdc_saves_nothing(admin_client, app):
    data = NODES | {"kerberos_kdcs": "dc1:0"}
    data["csrf_token"] = csrf_token(admin_client, "/deployments/new")
    response = admin_client.post("/deployments/new", data=data)
    assert response.status_code == 200
    assert "KDC &#39;dc1:0&#39;" in response.get_data(as_text=True)
    assert deployment_id(app) is None


def test_connection_test_refuses_a_node_of_another_deployment(admin_client, app):
    data = NODES | {"csrf_token": csrf_token(admin_client, "/deployments/new")}
    admin_client.post("/deployments/new", data=data)
    dep = deployment_id(app)
    form = {
        "csrf_token": csrf_token(admin_client, f"/deployments/{dep}/connections"),
        "username": "CORP\\admin",
        "password": "x",
        "node": "999999",
    }
    response = admin_client.post(f"/deployments/{dep}/connections", data=form)
    assert response.status_code == 200
    assert "Not a valid choice" in response.get_data(as_text=True)
    with app.app_context():
        kinds = db.session.scalars(db.select(Event.kind).where(Event.deployment_id == dep)).all()
        assert "connection.test_requested" not in kinds
