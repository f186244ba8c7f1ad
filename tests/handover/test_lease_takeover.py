"""One driver at a time: the lease, read-only watchers, take-over with a reason, secrets wiped."""

import re

from app.execution import vault
from app.extensions import db
from app.models import AuditRecord, DeploymentLease, Event
from tests.conftest import csrf_token
from tests.handover.helpers import deployment, signed_in

STEP = "prerequisites"


def _page(client, dep_id):
    return client.get(f"/deployments/{dep_id}/steps/{STEP}").get_data(as_text=True)


def _post_inputs(client, dep_id):
    token = csrf_token(client, f"/deployments/{dep_id}/steps/{STEP}")
    return client.post(
        f"/deployments/{dep_id}/steps/{STEP}", data={"csrf_token": token, "ams_version": "3.0.1"}
    )


def test_first_driver_holds_the_lease_and_others_watch_read_only(app):
    alice = signed_in(app, "alice", "operator")
    dep_id = deployment(app, "alice")
    assert "You are driving this deployment" in _page(alice, dep_id)
    helper = signed_in(app, "hank", "helpdesk")
    html = _page(helper, dep_id)
    assert "alice</strong> is driving" in html
    assert re.search(r'<fieldset class="lease-scope" disabled>', html)
    assert "Take over from alice" in html
    reviewer = signed_in(app, "rita", "reviewer")
    html = _page(reviewer, dep_id)
    assert "Take over" not in html and 'lease-scope" disabled' in html


def test_watcher_post_is_refused_with_a_clear_message(app):
    alice = signed_in(app, "alice", "operator")
    dep_id = deployment(app, "alice")
    _page(alice, dep_id)
    helper = signed_in(app, "hank", "helpdesk")
    response = _post_inputs(helper, dep_id)
    assert response.status_code == 302
    assert "alice is driving this deployment now" in helper.get(
        response.headers["Location"], follow_redirects=True
    ).get_data(as_text=True)


def test_take_over_records_reason_wipes_credentials_and_locks_out_the_previous_driver(app):
    alice = signed_in(app, "alice", "operator")
    dep_id = deployment(app, "alice")
    _page(alice, dep_id)
    with app.app_context():
        vault.store_credentials(dep_id, "CORP\\alice", "alice-secret-canary")
    helper = signed_in(app, "hank", "helpdesk")
    token = csrf_token(helper, f"/deployments/{dep_id}/steps/{STEP}")
    response = helper.post(
        f"/deployments/{dep_id}/take-over",
        data={"csrf_token": token, "reason": "Alice is on leave"},
    )
    assert response.status_code == 302 and response.headers["Location"].endswith(
        f"/{dep_id}/resume"
    )
    with app.app_context():
        lease = db.session.get(DeploymentLease, dep_id)
        assert lease.holder.username == "hank"
        assert vault.secret_names(dep_id) == frozenset()
        event = db.session.scalar(db.select(Event).where(Event.kind == "lease.taken_over"))
        assert event.payload["from"] == "alice" and event.payload["reason"] == "Alice is on leave"
        audit = db.session.scalar(
            db.select(AuditRecord).where(AuditRecord.action == "deployment.taken_over")
        )
        assert audit.actor_name == "hank" and audit.details["reason"] == "Alice is on leave"
    # The previous driver's stream carries the take-over at once.
    stream = alice.get(f"/deployments/{dep_id}/events.json?after=0").get_json()["events"]
    assert any(e["kind"] == "lease.taken_over" for e in stream)
    # ...and their next POST is refused.
    response = _post_inputs(alice, dep_id)
    assert response.status_code == 302
    page = alice.get(response.headers["Location"], follow_redirects=True).get_data(as_text=True)
    assert "hank is driving this deployment now" in page
    # Their ping says so too (what lease.js acts on).
    token = csrf_token(alice, f"/deployments/{dep_id}/steps/{STEP}")
    state = alice.post(f"/deployments/{dep_id}/lease", headers={"X-CSRFToken": token}).get_json()
    assert state == {"holder": "hank", "mine": False, "expires_at": state["expires_at"]}


def test_take_over_needs_a_reason_and_the_role(app):
    alice = signed_in(app, "alice", "operator")
    dep_id = deployment(app, "alice")
    _page(alice, dep_id)
    helper = signed_in(app, "hank", "helpdesk")
    token = csrf_token(helper, f"/deployments/{dep_id}/steps/{STEP}")
    helper.post(f"/deployments/{dep_id}/take-over", data={"csrf_token": token, "reason": ""})
    other = signed_in(app, "olga", "operator")
    token = csrf_token(other, "/history")
    refused = other.post(
        f"/deployments/{dep_id}/take-over", data={"csrf_token": token, "reason": "x y z"}
    )
    assert refused.status_code == 403
    with app.app_context():
        assert db.session.get(DeploymentLease, dep_id).holder.username == "alice"


def test_expired_lease_is_free_for_the_next_driver(app):
    app.config["LEASE_SECONDS"] = 0
    try:
        alice = signed_in(app, "alice", "operator")
        dep_id = deployment(app, "alice")
        _page(alice, dep_id)
        admin = signed_in(app, "adam", "admin")
        response = _post_inputs(admin, dep_id)
        assert "is driving this deployment now" not in response.get_data(as_text=True)
        assert response.status_code in (302, 400)  # carried out (saved, or form errors shown)
    finally:
        app.config["LEASE_SECONDS"] = 120
    with app.app_context():
        assert db.session.get(DeploymentLease, dep_id).holder.username == "adam"


def test_step_page_includes_the_lease_script(app):
    alice = signed_in(app, "alice", "operator")
    dep_id = deployment(app, "alice")
    assert "js/lease.js" in _page(alice, dep_id)
    assert "lease.taken_over" in app.test_client().get("/static/js/lease.js").get_data(as_text=True)
