"""Issue 21, item 8: messages say what changed and what to do."""

import requests

from app.guides.cluster.quorum import STEP as QUORUM
from app.guides.shared.flow import failure_checks
from app.handover import drift
from app.remote import errors
from app.remote.runner import Connection
from tests.guides.cluster_views import failed, make_view, ok

NO_WITNESS = {"quorum_type": "NodeMajority", "witness_kind": None, "node_count": 2}
CLOUD = {
    "quorum_type": "NodeAndCloudMajority",
    "witness_kind": "Cloud Witness",
    "cloud_account": "other",
    "node_count": 2,
}


def _verify(current, **inputs):
    view = make_view("quorum", {"detect": {"AMS1": ok("AMS1", "quorum_get", current)}}, **inputs)
    return drift.decide(QUORUM, view)


def test_quorum_drift_names_the_missing_witness_and_the_quorum_now():
    verdict = _verify(NO_WITNESS)
    assert verdict.status == "needs_attention"
    (check,) = verdict.checks
    assert check.key == "drift.quorum"
    assert check.evidence.startswith(
        "The File Share Quorum Witness (\\\\FS1\\witness) this step set is gone: the quorum is "
        "now NodeMajority quorum without a witness."
    )
    assert "With 2 nodes and no witness, losing 1 of them stops the cluster." in check.evidence
    assert "run it again to set the witness back" in check.remediation
    assert verdict.summary == f"Drift: {check.evidence}"


def test_quorum_drift_to_another_witness_says_which():
    (check,) = _verify(CLOUD).checks
    assert "another witness: Cloud Witness (other), not File Share Quorum Witness" in check.evidence
    assert "losing" not in check.evidence


def test_quorum_still_in_place_is_no_drift():
    fsw = {
        "quorum_type": "Majority",
        "witness_kind": "File Share Quorum Witness",
        "share_path": "\\\\FS1\\witness",
        "node_count": 2,
    }
    assert _verify(fsw).status == "done"


def test_unreachable_names_the_configured_port_and_keeps_the_raw_error_aside():
    raw = requests.exceptions.ConnectionError(
        "HTTPConnectionPool(host='ams2', port=5999): Max retries exceeded with url: /wsman "
        "(Caused by NewConnectionError('<urllib3.connection.HTTPConnection object at 0x7f>: "
        "Failed to establish a new connection: [Errno 111] Connection refused'))"
    )
    conn = Connection(host="ams2", port=5999)
    error = errors.classify(raw, **conn.endpoint)
    assert error.category == errors.UNREACHABLE
    assert error.message == "Cannot reach the node (ams2:5999): connection refused"
    assert "TCP 5999 (HTTP), as this deployment configures the node" in error.remediation
    assert "did not answer on its WinRM port" in error.remediation
    assert "HTTPConnectionPool" in error.detail and "HTTPConnectionPool" not in error.message
    assert error.as_dict()["detail"] == error.detail


def test_unknown_connection_failures_keep_their_text_in_the_detail_only():
    raw = requests.exceptions.ConnectionError("something odd at 0x7f3a in urllib3")
    error = errors.classify(raw, **Connection(host="n1", transport="https").endpoint)
    assert error.message == "Cannot reach the node (n1:5986): the connection failed"
    assert "something odd" in error.detail
    assert "TCP 5986 (HTTPS)" in error.remediation


def test_a_step_failure_check_names_the_port_too():
    result = failed(
        "AMS2",
        "cluster_detect",
        "Cannot reach the node (ams2:5999): connection refused",
        errors.UNREACHABLE,
    )
    (check,) = failure_checks({"AMS2": result}, "detect", "Reading the cluster state")
    assert "TCP 5999" in check.remediation


def test_the_connection_page_hides_the_raw_error_in_details(app):
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from flask import render_template
    from flask_login import login_user

    from app.models import User

    node = SimpleNamespace(id=1, name="AMS2", host="ams2", port=5999, auth="ntlm", transport="http")
    results = {
        "AMS2": {
            "pending": False,
            "ok": False,
            "message": "Cannot reach the node (ams2:5999): connection refused",
            "remediation": "Check TCP 5999.",
            "detail": "ConnectionError: HTTPConnectionPool(...)",
            "at": datetime.now(UTC),
        }
    }
    from app.deployments.forms import ConnectionTestForm

    with app.test_request_context():
        login_user(User(id=1, username="x", role="admin", password_hash="x"))
        html = render_template(
            "deployments/connections.html",
            deployment=SimpleNamespace(id=1, name="D", nodes=[node]),
            form=ConnectionTestForm(meta={"csrf": False}),
            results=results,
            pending=False,
        )
    assert (
        '<details class="raw-error"><summary>Technical detail</summary><code>ConnectionError'
        in html
    )
    assert html.index("Cannot reach the node (ams2:5999)") < html.index("raw-error")
