"""Bad input gets a 4xx JSON answer with a clear message, never a 500, and nothing is saved."""

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Deployment, DeploymentStep
from tests.api.conftest import DEPLOYMENT

PREREQS = {
    "ams_version": "2.1.1069.0",
    "gmsa": "CORP\\amsgmsa$",
    "sql_connection_string": "Server=sql01.corp.example.com;Database=AMS;Integrated Security=true",
}
NODE = {"name": "node9", "host": "10.0.0.9"}


def _count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Deployment))


CREATE_CASES = [
    ("wrong type name", {**DEPLOYMENT, "name": 42}, 422, "name"),
    ("wrong type nodes", {**DEPLOYMENT, "nodes": "node1,node2"}, 422, "nodes"),
    (
        "wrong type port",
        {**DEPLOYMENT, "nodes": [{**NODE, "port": "5985"}, NODE]},
        422,
        "nodes.0.port",
    ),
    ("bool as port", {**DEPLOYMENT, "nodes": [{**NODE, "port": True}, NODE]}, 422, "nodes.0.port"),
    ("string as bool", {**DEPLOYMENT, "nodes": [{**NODE, "cert_validation": "no"}]}, 422, None),
    ("unknown field", {**DEPLOYMENT, "owner": "eve"}, 422, "owner"),
    ("unknown node field", {**DEPLOYMENT, "nodes": [{**NODE, "os": "x"}, NODE]}, 422, "nodes.0.os"),
    ("one node", {**DEPLOYMENT, "nodes": [NODE]}, 422, "nodes"),
    ("duplicate nodes", {**DEPLOYMENT, "nodes": [NODE, NODE]}, 422, "nodes"),
    ("bad domain", {**DEPLOYMENT, "domain_fqdn": "corp"}, 422, "domain_fqdn"),
    ("bad choice", {**DEPLOYMENT, "nodes": [{**NODE, "auth": "pki"}, NODE]}, 422, None),
    ("NUL in a value", {**DEPLOYMENT, "name": "a\u0000b"}, 422, "name"),
    ("null name", {**DEPLOYMENT, "name": None}, 422, "name"),
    ("missing everything", {}, 422, "name"),
]


@pytest.mark.parametrize(
    ("case", "body", "status", "field"), CREATE_CASES, ids=[c[0] for c in CREATE_CASES]
)
def test_create_refuses_bad_json_fields(app, api, case, body, status, field):
    response = api.post("/api/v1/deployments", json=body)
    assert response.status_code == status, response.get_json()
    payload = response.get_json()
    assert payload["code"] == status and payload["message"]
    if field:
        assert field in payload["errors"], payload
    assert _count(app) == 0


RAW_CASES = [
    ("malformed json", b'{"name": "x",', "application/json", 400),
    ("not an object", b"[1, 2]", "application/json", 422),
    ("not json at all", b"name=x", "application/x-www-form-urlencoded", 415),
    ("not utf-8", b'{"name": "\xff"}', "application/json", 400),
    ("lone surrogate", b'{"name": "\\ud800"}', "application/json", 422),
    ("deep nesting", b"[" * 5000 + b"]" * 5000, "application/json", 400),
    ("oversize", b'{"name": "' + b"x" * 300_000 + b'"}', "application/json", 413),
]


@pytest.mark.parametrize(
    ("case", "data", "ctype", "status"), RAW_CASES, ids=[c[0] for c in RAW_CASES]
)
def test_create_refuses_bad_bodies(app, api, case, data, ctype, status):
    response = api.post("/api/v1/deployments", data=data, headers={"Content-Type": ctype})
    assert response.status_code == status
    assert response.is_json and response.get_json()["code"] == status
    assert response.get_json()["message"]
    assert _count(app) == 0


STEP_CASES = [
    ("wrong type", {**PREREQS, "ams_version": 2.1}, "ams_version"),
    ("unknown field", {**PREREQS, "surprise": "x"}, "surprise"),
    (
        "form rule",
        {**PREREQS, "sql_connection_string": "Server=.\\SQLEXPRESS"},
        "sql_connection_string",
    ),
    ("one bad among good", {**PREREQS, "gmsa": "not-a-gmsa"}, "gmsa"),
    ("secret of wrong type", {**PREREQS, "license_key": 12345}, "license_key"),
]


@pytest.mark.parametrize(("case", "body", "field"), STEP_CASES, ids=[c[0] for c in STEP_CASES])
def test_step_inputs_are_all_or_nothing(app, api, deployment_id, case, body, field):
    url = f"/api/v1/deployments/{deployment_id}/steps/prerequisites/inputs"
    response = api.put(url, json={**body, "license_key": body.get("license_key", "L" * 20)})
    assert response.status_code == 422
    assert field in response.get_json()["errors"]
    with app.app_context():
        record = db.session.scalar(
            select(DeploymentStep).where(DeploymentStep.step_key == "prerequisites")
        )
        assert record.inputs == {}
    assert api.get(f"/api/v1/deployments/{deployment_id}").get_json()["secrets_held"] == []


def test_cross_check_errors_come_back_per_field(api, deployment_id):
    url = f"/api/v1/deployments/{deployment_id}/steps/base_cluster/inputs"
    response = api.put(url, json={"cluster_name": "node1", "cluster_address": "10.0.0.2"})
    assert response.status_code == 422
    assert set(response.get_json()["errors"]) == {"cluster_name", "cluster_address"}


def test_valid_inputs_save_normalised_and_secret_goes_to_vault(api, deployment_id):
    url = f"/api/v1/deployments/{deployment_id}/steps/prerequisites/inputs"
    response = api.put(url, json={**PREREQS, "gmsa": "corp\\amsgmsa$", "license_key": "K" * 24})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["inputs"]["gmsa"] == "CORP\\amsgmsa$"
    assert "license_key" not in body["inputs"] and "K" * 24 not in response.get_data(as_text=True)
    assert (
        "license_key" in api.get(f"/api/v1/deployments/{deployment_id}").get_json()["secrets_held"]
    )


def test_advice_on_saved_inputs_comes_back_beside_them(api, deployment_id):
    """As the step page shows it: a witness share served by one of the cluster's nodes saves, and
    the answer (and the deployment's step list) say why it is a poor choice."""
    url = f"/api/v1/deployments/{deployment_id}/steps/quorum/inputs"
    on_node = {"witness_type": "file_share", "share_path": "\\\\10.0.0.2\\witness"}
    response = api.put(url, json=on_node)
    assert response.status_code == 200, response.get_json()
    warning = response.get_json()["input_warnings"]["share_path"]
    assert "is served by NODE2, one of this cluster's own nodes" in warning
    steps = api.get(f"/api/v1/deployments/{deployment_id}").get_json()["steps"]
    assert next(s for s in steps if s["key"] == "quorum")["input_warnings"] == {
        "share_path": warning
    }
    off = api.put(url, json={"witness_type": "file_share", "share_path": "\\\\FS1\\witness"})
    assert off.status_code == 200 and off.get_json()["input_warnings"] == {}


def test_run_body_is_checked_and_password_never_echoed(api, deployment_id):
    url = f"/api/v1/deployments/{deployment_id}/steps/prerequisites/run"
    missing = api.post(url, json={"username": "CORP\\admin"})
    assert missing.status_code == 422 and "password" in missing.get_json()["errors"]
    extra = api.post(url, json={"username": "u", "password": "p", "sudo": True})
    assert extra.status_code == 422 and "sudo" in extra.get_json()["errors"]
    blocked = api.post(
        f"/api/v1/deployments/{deployment_id}/steps/quorum/run",
        json={"username": "CORP\\admin", "password": "Pa55-secret!"},
    )
    assert blocked.status_code == 409
    assert "Pa55-secret!" not in blocked.get_data(as_text=True)
    assert api.get(f"/api/v1/deployments/{deployment_id}").get_json()["secrets_held"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"decision": "explode"}, "decision"),
        ({"decision": "skip"}, "reason"),
        ({"decision": "retry", "nodes": "node1"}, "nodes"),
        ({"decision": "retry", "username": "u"}, "password"),
    ],
)
def test_decision_body_is_checked(api, deployment_id, body, field):
    url = f"/api/v1/deployments/{deployment_id}/steps/prerequisites/decision"
    response = api.post(url, json=body)
    assert response.status_code == 422
    assert field in response.get_json()["errors"]


def test_decision_on_a_step_that_is_not_paused_is_a_conflict(api, deployment_id):
    url = f"/api/v1/deployments/{deployment_id}/steps/prerequisites/decision"
    response = api.post(url, json={"decision": "retry"})
    assert response.status_code == 409
    assert "not waiting" in response.get_json()["message"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/deployments/999999",
        "/api/v1/deployments/99999999999999999999",
        "/api/v1/deployments/1/steps/NOPE/plan",
        "/api/v1/nowhere",
        "/api/v1/deployments?page=0",
        "/api/v1/deployments?page=x",
        "/api/v1/deployments?bogus=1",
        "/api/v1/deployments/1/events?after=-1",
        "/api/v1/deployments/1/events?after=99999999999999",
        "/api/v1/deployments/1/events?limit=100000",
    ],
)
def test_bad_paths_and_queries_are_json_4xx(api, deployment_id, path):
    response = api.get(path)
    assert 400 <= response.status_code < 500
    assert response.is_json and response.get_json()["message"]


def test_wrong_method_is_json_405(api):
    response = api.client.delete("/api/v1/deployments", headers=api._headers())
    assert response.status_code == 405 and response.is_json
