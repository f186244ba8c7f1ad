"""History list, filters, a deployment's page, exports (no secrets) and the dashboard."""

import csv
import io
import json
import re
from datetime import timedelta

from app.events.publish import publish
from app.execution import vault
from app.extensions import db
from app.history.charts import duration_text
from app.models import Deployment, NodeAction, StepRun, utcnow
from tests.conftest import csrf_token
from tests.handover.helpers import deployment, signed_in, user

CANARY = "CANARY-s3cr3t-7f1d"


def _run(dep_id, step_key, attempt, status, outcome, actions=(), actor=None):
    start = utcnow() - timedelta(minutes=10 - attempt)
    run = StepRun(
        deployment_id=dep_id,
        step_key=step_key,
        attempt=attempt,
        status=status,
        actor_id=actor,
        outcome=outcome,
        started_at=start,
        finished_at=start + timedelta(seconds=42),
    )
    run.actions = [
        NodeAction(
            node_name=n,
            phase="detect",
            script="cluster_detect",
            status=s,
            started_at=start,
            finished_at=start + timedelta(seconds=3),
            error_category="timeout" if s == "failed" else None,
            error_message="timed out" if s == "failed" else None,
        )
        for n, s in actions
    ]
    db.session.add(run)
    return run


def seed(app) -> int:
    """A deployment whose base cluster failed once, then succeeded (with a Test-Cluster report)."""
    owner = user(app, "alice", "operator")
    dep_id = deployment(app, "alice", name="Payroll cluster")
    with app.app_context():
        dep = db.session.get(Deployment, dep_id)
        dep.status = "paused"
        dep.step("prerequisites").inputs = {"ams_version": "3.0.1", "gmsa": "corp\\gmsa$"}
        dep.step("prerequisites").status = "done"
        dep.step("base_cluster").inputs = {"cluster_name": "AMSCLU01"}
        dep.step("base_cluster").status = "done"
        dep.step("quorum").status = "skipped"
        dep.step("quorum").skip_reason = "Witness handled by the storage team"
        report = {
            "outcome": "Warning",
            "issues": [{"severity": "warning", "test": "Network", "message": "Single NIC"}],
            "html": "<p>Validation report body</p>",
            "path": "C:\\r.htm",
        }
        check = {
            "key": "cluster",
            "title": "Cluster formed",
            "status": "pass",
            "node": "AMS1",
            "evidence": "AMSCLU01 has 2 nodes Up",
            "remediation": "",
            "fix": None,
        }
        _run(
            dep_id,
            "base_cluster",
            1,
            "failed",
            {"status": "needs_attention", "summary": "boom", "checks": [], "artifacts": {}},
            [("AMS1", "failed"), ("AMS2", "succeeded")],
            owner,
        )
        _run(
            dep_id,
            "base_cluster",
            2,
            "succeeded",
            {
                "status": "done",
                "summary": "Cluster up",
                "checks": [check],
                "artifacts": {"test_cluster_report": report},
            },
            [("AMS1", "succeeded"), ("AMS2", "succeeded")],
            owner,
        )
        db.session.commit()
        publish(
            dep_id,
            "step.skipped",
            {"reason": "Witness handled by the storage team"},
            step_key="quorum",
            actor_id=owner,
        )
        vault.store_credentials(dep_id, "CORP\\alice", CANARY)
        vault.merge_secrets(dep_id, {"license_key": CANARY})
    return dep_id


def test_history_list_filters_and_paginates(app):
    dep_id = seed(app)
    user(app, "bob", "operator")
    for i in range(30):
        deployment(app, "bob", name=f"Other {i}", domain_fqdn="other.example.test")
    reviewer = signed_in(app, "rita", "reviewer")
    first = reviewer.get("/history").get_data(as_text=True)
    assert "Page 1 of 2" in first
    assert "<th>Started (UTC)</th>" in first  # times are UTC, as on the deployments list
    cases = {
        "/history?q=amsclu": True,
        "/history?q=payroll": True,
        "/history?q=corp.example": True,
        "/history?operator=alice": True,
        "/history?operator=bob": False,
        "/history?ams_version=3.0.1": True,
        "/history?ams_version=2.2": False,
        "/history?status=paused": True,
        "/history?status=draft": False,
        f"/history?q=payroll&from={utcnow():%Y-%m-%d}": True,
        "/history?to=2001-01-01": False,
    }
    for url, present in cases.items():
        html = reviewer.get(url).get_data(as_text=True)
        assert (f"/deployments/{dep_id}/history" in html) is present, url


def test_deployment_page_shows_timeline_retries_skips_report_and_evidence(app):
    dep_id = seed(app)
    reviewer = signed_in(app, "rita", "reviewer")
    html = reviewer.get(f"/deployments/{dep_id}/history").get_data(as_text=True)
    base = html.split('id="step-base_cluster"', 1)[1].split("</section>", 1)[0]
    # The step reads "done", as in the wizard; its attempts keep their own "succeeded"/"failed".
    head = base.split("</h2>", 1)[0]
    assert "badge-done" in head and "badge-succeeded" in base
    assert "Attempt 1" in base and "Attempt 2" in base
    assert "timed out" in base and "AMSCLU01 has 2 nodes Up" in base
    assert "Witness handled by the storage team" in html
    assert "Cluster validation (Test-Cluster)" in html and "Single NIC" in html
    assert "step.skipped" in html and "deployment.created" in html
    assert CANARY not in html


def test_exports_never_contain_secrets(app):
    dep_id = seed(app)
    alice = signed_in(app, "alice", "operator")
    body = alice.get(f"/deployments/{dep_id}/export.json")
    assert body.status_code == 200 and CANARY not in body.get_data(as_text=True)
    data = json.loads(body.get_data(as_text=True))
    base = next(s for s in data["steps"] if s["key"] == "base_cluster")
    assert base["status"] == "done" and len(base["attempts"]) == 2 and base["retries"] == 1
    assert data["steps"][0]["inputs"]["ams_version"] == "3.0.1"
    report = alice.get(f"/deployments/{dep_id}/report").get_data(as_text=True)
    assert "@media print" in alice.get("/static/css/history.css").get_data(as_text=True)
    assert "Deployment report: Payroll cluster" in report and CANARY not in report
    rows = list(
        csv.DictReader(io.StringIO(alice.get("/history.csv?q=payroll").get_data(as_text=True)))
    )
    assert [r["cluster"] for r in rows] == ["AMSCLU01"] and CANARY not in str(rows)


def test_csv_neutralises_formulas(app):
    user(app, "alice", "operator")
    deployment(app, "alice", name="=HYPERLINK(1)")
    alice = signed_in(app, "alice", "operator")
    assert "'=HYPERLINK(1)" in alice.get("/history.csv").get_data(as_text=True)


def test_notes_on_deployment_and_step_appear_in_the_timeline(app):
    dep_id = seed(app)
    helper = signed_in(app, "hank", "helpdesk")
    token = csrf_token(helper, f"/deployments/{dep_id}/history")
    helper.post(
        f"/deployments/{dep_id}/notes", data={"csrf_token": token, "text": "Call Bob first"}
    )
    helper.post(
        f"/deployments/{dep_id}/notes",
        data={"csrf_token": token, "text": "DNS is slow", "step_key": "base_cluster"},
    )
    html = helper.get(f"/deployments/{dep_id}/history").get_data(as_text=True)
    assert "Call Bob first" in html and "DNS is slow" in html
    assert re.search(r"note.added</strong> · base_cluster\s+· by hank", html)


def test_dashboard_draws_svg_charts(app):
    seed(app)
    page = signed_in(app, "rita", "reviewer").get("/dashboard").get_data(as_text=True)
    assert page.count("<svg") == 3
    assert "Base cluster" in page and "timeout" in page
    assert "<script" not in page.split("<main", 1)[1].split("</main>", 1)[0]


def test_step_durations_read_as_people_say_them():
    assert [duration_text(s) for s in (0.43, 9.96, 42.7, 125)] == [
        "0.4 s",
        "10.0 s",
        "42 s",
        "2 min 5 s",
    ]
