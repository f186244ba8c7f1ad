"""Token lifecycle: created (shown once), used, revoked, refused; roles scope tokens; cookies refused."""

import re

from sqlalchemy import select

from app.extensions import db
from app.models import ApiToken, AuditRecord
from tests.api.conftest import DEPLOYMENT
from tests.conftest import csrf_token, login

TOKEN_RE = re.compile(r"amsw_[0-9a-f]{8}_[A-Za-z0-9_-]{20,}")


def _create_in_ui(client, name="deploy script"):
    token = csrf_token(client, "/account/tokens")
    response = client.post("/account/tokens", data={"name": name, "csrf_token": token})
    assert response.status_code == 201
    html = response.get_data(as_text=True)
    found = TOKEN_RE.findall(html)
    assert len(set(found)) == 1
    return found[0]


def test_token_created_in_ui_is_shown_once_stored_hashed_used_and_revoked(app, client, make_user):
    login(client, make_user("olivia", "operator"))
    plaintext = _create_in_ui(client)
    assert plaintext not in client.get("/account/tokens").get_data(as_text=True)
    with app.app_context():
        row = db.session.scalar(select(ApiToken))
        assert row.token_hash != plaintext and plaintext not in row.token_hash
        assert plaintext.startswith(f"amsw_{row.prefix}_") and row.last_used_at is None
        token_id = row.id

    api = app.test_client()  # no session: the token alone
    headers = {"Authorization": f"Bearer {plaintext}"}
    assert api.get("/api/v1/deployments", headers=headers).status_code == 200
    with app.app_context():
        assert db.session.get(ApiToken, token_id).last_used_at is not None

    form_token = csrf_token(client, "/account/tokens")
    revoked = client.post(f"/account/tokens/{token_id}/revoke", data={"csrf_token": form_token})
    assert revoked.status_code == 302
    refused = api.get("/api/v1/deployments", headers=headers)
    assert refused.status_code == 401
    assert refused.get_json()["code"] == 401
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")


def test_revoke_needs_csrf_and_only_ones_own_tokens(app, client, make_user, make_token):
    make_token("operator", "someone")
    login(client, make_user("olivia", "operator"))
    with app.app_context():
        other = db.session.scalar(select(ApiToken)).id
    assert client.post(f"/account/tokens/{other}/revoke", data={}).status_code == 400
    form_token = csrf_token(client, "/account/tokens")
    response = client.post(f"/account/tokens/{other}/revoke", data={"csrf_token": form_token})
    assert response.status_code == 404
    with app.app_context():
        assert db.session.get(ApiToken, other).revoked_at is None


def test_reviewer_token_reads_but_cannot_create_or_run(app, client, make_token, api):
    created = api.post("/api/v1/deployments", json=DEPLOYMENT)
    deployment_id = created.get_json()["id"]
    reviewer = {"Authorization": f"Bearer {make_token('reviewer')}"}
    assert client.get(f"/api/v1/deployments/{deployment_id}", headers=reviewer).status_code == 200
    assert (
        client.get(f"/api/v1/deployments/{deployment_id}/status", headers=reviewer).status_code
        == 200
    )
    run = client.post(
        f"/api/v1/deployments/{deployment_id}/steps/prerequisites/run",
        json={"username": "CORP\\admin", "password": "secret"},
        headers=reviewer,
    )
    assert run.status_code == 403 and "reviewer" in run.get_json()["message"]
    assert client.post("/api/v1/deployments", json=DEPLOYMENT, headers=reviewer).status_code == 403
    inputs = client.put(
        f"/api/v1/deployments/{deployment_id}/steps/failover_test/inputs",
        json={"move_timeout": 60},
        headers=reviewer,
    )
    assert inputs.status_code == 403


def test_session_cookie_is_not_accepted_by_the_api(admin_client):
    assert admin_client.get("/").status_code == 200  # signed in for the screens
    response = admin_client.get("/api/v1/deployments")
    assert response.status_code == 401
    assert response.is_json
    assert "Set-Cookie" not in response.headers


def test_malformed_and_unknown_tokens_are_refused(client, token):
    for header in (
        "Bearer amsw_00000000_notarealtoken",
        f"Basic {token}",
        token,
        "Bearer " + "x" * 500,
        f"Bearer {token}x",
    ):
        response = client.get("/api/v1/deployments", headers={"Authorization": header})
        assert response.status_code == 401, header


def test_every_api_call_is_audited_with_the_token_user(app, api, client):
    api.get("/api/v1/deployments")
    client.get("/api/v1/deployments")  # refused: no token
    api.post("/api/v1/deployments", json={"name": 5})
    with app.app_context():
        rows = db.session.scalars(select(AuditRecord).order_by(AuditRecord.seq)).all()
        calls = [
            (r.action, r.actor_name, r.details["status"])
            for r in rows
            if r.action.startswith("api.")
        ]
    assert calls == [
        ("api.list_all", "api-admin", 200),
        ("api.list_all", "", 401),
        ("api.create", "api-admin", 422),
    ]
