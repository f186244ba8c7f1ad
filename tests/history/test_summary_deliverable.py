"""The Summary as a deliverable (issue 21, points 3, 4 and 9): its facts, the Summary step's status
as the wizard, the history page, the report, the JSON export and the API each show it, high
availability said plainly, no node editing on a finished deployment, the runbook linked and its
downloads audited.

The runs are seeded with the shapes the real steps record (artifacts, and the scripts' JSON output
kept on each action); the deployment completes through the real settle_deployment."""

import json
import re

from sqlalchemy import select

from app.events.publish import publish
from app.execution.machine.finishing import settle_deployment
from app.extensions import db
from app.models import AuditRecord, Deployment, Event
from tests.conftest import csrf_token
from tests.handover.helpers import DEPLOYMENT, deployment, signed_in, user
from tests.history.completed import CANARY, NODES, completed


def _summary_status(html: str) -> dict[str, str]:
    """The Summary step's status as each part of a page shows it."""
    found = {}
    if m := re.search(r'data-step-state="summary">([^<]+)<', html):
        found["sidebar"] = m.group(1).strip()
    if m := re.search(r'data-step-row="summary">.*?data-step-status="([^"]+)"', html, re.S):
        found["deliverable"] = m.group(1)
    if m := re.search(
        r'href="#step-summary">Summary</a></td><td><span class="badge badge-(\w+)', html
    ):
        found["steps table"] = m.group(1)
    return found


def test_history_report_export_api_and_wizard_agree_on_the_summary_status(app):
    dep_id = completed(app)
    with app.app_context():
        record = db.session.get(Deployment, dep_id).step("summary")
        assert record.status == "done"  # the cause: the Summary step now gets a status
        from app.api.present import deployment_dict

        api = {
            s["key"]: s["status"]
            for s in deployment_dict(db.session.get(Deployment, dep_id))["steps"]
        }
    alice = signed_in(app, "alice", "operator")
    wizard = alice.get(f"/deployments/{dep_id}/steps/summary").get_data(as_text=True)
    history = alice.get(f"/deployments/{dep_id}/history").get_data(as_text=True)
    report = alice.get(f"/deployments/{dep_id}/report").get_data(as_text=True)
    export = json.loads(alice.get(f"/deployments/{dep_id}/export.json").get_data(as_text=True))
    assert _summary_status(wizard) == {"sidebar": "done", "deliverable": "done"}
    assert _summary_status(history) == {"deliverable": "done", "steps table": "done"}
    assert _summary_status(report) == {"deliverable": "done", "steps table": "done"}
    exported = {s["key"]: s["status"] for s in export["steps"]}
    assert exported["summary"] == api["summary"] == "done"
    assert exported == api  # every step, the same word everywhere
    assert {s["key"]: s["status"] for s in export["summary"]["steps"]} == exported


def test_a_reopened_deployment_shows_the_summary_not_started_everywhere(app):
    dep_id = completed(app)
    with app.app_context():
        dep = db.session.get(Deployment, dep_id)
        dep.step("failover_test").status = "needs_attention"  # a run after completion paused
        settle_deployment(dep, "failover_test", paused=True)
        db.session.commit()
        assert dep.step("summary").status == "not_started"
    alice = signed_in(app, "alice", "operator")
    wizard = alice.get(f"/deployments/{dep_id}/steps/summary").get_data(as_text=True)
    history = alice.get(f"/deployments/{dep_id}/history").get_data(as_text=True)
    assert _summary_status(wizard)["sidebar"] == "not started"
    assert _summary_status(history) == {"deliverable": "not_started", "steps table": "not_started"}


def test_an_older_completed_record_without_a_summary_status_still_agrees(app):
    dep_id = completed(app)
    with app.app_context():
        db.session.get(Deployment, dep_id).step("summary").status = "not_started"  # before the fix
        db.session.commit()
    alice = signed_in(app, "alice", "operator")
    wizard = alice.get(f"/deployments/{dep_id}/steps/summary").get_data(as_text=True)
    history = alice.get(f"/deployments/{dep_id}/history").get_data(as_text=True)
    assert _summary_status(wizard)["sidebar"] == "done"
    assert _summary_status(history)["steps table"] == "done"


def test_the_summary_shows_every_fact_and_never_the_database_password(app):
    dep_id = completed(app)
    alice = signed_in(app, "alice", "operator")
    html = alice.get(f"/deployments/{dep_id}/steps/summary").get_data(as_text=True)

    def fact(name: str) -> str:
        return re.sub(r"<[^>]+>", "", re.search(rf'data-fact="{name}">(.*?)</dd>', html, re.S)[1])

    assert fact("cluster").startswith("AMSCLU") and "amsclu.corp.example.test" in fact("cluster")
    assert fact("cluster-address") == "10.0.0.50"
    assert fact("quorum").startswith("File Share Quorum Witness, \\\\FS1\\witness · online")
    assert fact("role").startswith("AMSWEB") and fact("role-address") == "10.0.0.51"
    assert fact("owner").startswith("AMS3") and "after the failover test" in fact("owner")
    assert fact("ams-version") == "3.0.1"
    nodes = html.split("data-summary-nodes", 1)[1].split("</table>", 1)[0]
    for node in NODES:
        row = nodes.split(f'data-node="{node}"', 1)[1].split("</tr>", 1)[0]
        assert "Up" in row and "CORP\\gmsa-ams$" in row and "AccessManager on SQL1" in row
        assert "start type Manual" in row and row.count("badge-pass") == 2  # Up, failover
    failover = html.split("data-summary-failover", 1)[1].split("</table>", 1)[0]
    assert failover.count("badge-pass") == 3 and "6.0 s" in failover
    assert "6.000000000000001" not in html and "UTC</time>" in failover
    steps = html.split("data-summary-steps", 1)[1].split("</table>", 1)[0]
    assert steps.count(">alice<") == 6  # who ran each runnable step, with its times
    assert 'data-ha="yes"' in html and "Highly available" in html
    assert "Nothing was skipped and no node was excluded." in html
    for link in ("report", "json", "runbook"):
        assert f'data-link="{link}"' in html
    assert CANARY not in html and "User ID" not in html
    export = alice.get(f"/deployments/{dep_id}/export.json").get_data(as_text=True)
    assert CANARY not in export
    assert json.loads(export)["summary"]["nodes"][0]["ams"]["database"] == "AccessManager on SQL1"


def test_skipped_and_excluded_items_show_with_their_reason_and_who(app):
    dep_id = completed(app, excluded=("AMS3",))
    with app.app_context():
        dep = db.session.get(Deployment, dep_id)
        dep.step("quorum").status = "skipped"
        dep.step("quorum").skip_reason = "Witness handled by the storage team"
        db.session.commit()
        publish(
            dep_id,
            "step.skipped",
            {"reason": "Witness handled by the storage team"},
            step_key="quorum",
            actor_id=user(app, "alice", "operator"),
        )
    alice = signed_in(app, "alice", "operator")
    for path in ("steps/summary", "history", "report"):
        html = alice.get(f"/deployments/{dep_id}/{path}").get_data(as_text=True)
        items = html.split("data-summary-exceptions", 1)[1].split("</ul>", 1)[0]
        text = re.sub(r"<[^>]+>", "", items)
        assert "Step Quorum witness was skipped by alice" in text, path
        assert "Witness handled by the storage team" in text, path
        assert "Node AMS3 was excluded by alice" in text and "Disk controller failed" in text, path


def test_two_nodes_with_one_excluded_earlier_is_not_highly_available(app):
    dep_id = completed(app, nodes=["AMS1", "AMS2"], excluded=("AMS2",))
    alice = signed_in(app, "alice", "operator")
    wizard = alice.get(f"/deployments/{dep_id}/steps/summary").get_data(as_text=True)
    assert 'data-outcome="completed-not-ha"' in wizard and 'data-outcome="complete"' not in wizard
    assert 'data-ha="no"' in wizard and "Not highly available." in wizard
    assert "Only 1 node (AMS1) remain" in wizard
    report = alice.get(f"/deployments/{dep_id}/report").get_data(as_text=True)
    assert "completed: <strong data-ha-status>not highly available</strong>" in report
    assert 'data-ha="no"' in report
    assert re.search(r"deployment.completed</strong>.*?Not highly available", report, re.S)
    export = json.loads(alice.get(f"/deployments/{dep_id}/export.json").get_data(as_text=True))
    assert export["summary"]["ha"]["status"] == "no"


def test_failover_passing_on_one_node_only_is_not_highly_available(app):
    dep_id = completed(app, nodes=["AMS1", "AMS2"], failover_fails=("AMS2",))
    alice = signed_in(app, "alice", "operator")
    html = alice.get(f"/deployments/{dep_id}/steps/summary").get_data(as_text=True)
    assert 'data-ha="no"' in html and "answered on 1 node(s) only (AMS1)" in html


def test_availability_edges():
    from app.guides.cluster.summary import availability

    two = [{"node": "AMS1", "result": "pass"}, {"node": "AMS2", "result": "pass"}]
    assert availability(["AMS1", "AMS2"], "done", two, None)["status"] == "yes"
    assert availability(["AMS1"], "done", two[:1], None)["status"] == "no"
    assert availability([], "skipped", [], "no time")["status"] == "no"
    skipped = availability(["AMS1", "AMS2"], "skipped", [], "change window closed")
    assert skipped["status"] == "unverified" and "change window closed" in skipped["text"]
    assert availability(["AMS1", "AMS2"], "not_started", [], None)["status"] == "pending"


def test_edit_nodes_is_neither_offered_nor_accepted_on_a_finished_deployment(app):
    user(app, "alice", "operator")
    draft = deployment(app, "alice", name="Draft one")
    dep_id = completed(app)
    alice = signed_in(app, "alice", "operator")
    assert "data-edit-nodes" in alice.get(f"/deployments/{draft}/steps/prerequisites").get_data(
        as_text=True
    )
    page = alice.get(f"/deployments/{dep_id}/steps/summary").get_data(as_text=True)
    assert "data-edit-nodes" not in page and f"/deployments/{dep_id}/edit" not in page
    refused = alice.get(f"/deployments/{dep_id}/edit")
    assert refused.status_code == 409 and "no longer change" in refused.get_data(as_text=True)
    token = csrf_token(alice, f"/deployments/{draft}/edit")
    data = {"csrf_token": token, "name": "Renamed", "domain_fqdn": "corp.example.test"}
    for i, name in enumerate(["NEW1", "NEW2"]):
        data |= {
            f"nodes-{i}-name": name,
            f"nodes-{i}-host": "127.0.0.1",
            f"nodes-{i}-port": str(5985 + i),
            f"nodes-{i}-transport": "http",
            f"nodes-{i}-auth": "ntlm",
        }
    posted = alice.post(f"/deployments/{dep_id}/edit", data=data)
    assert posted.status_code == 409
    with app.app_context():
        dep = db.session.get(Deployment, dep_id)
        assert dep.name == "Payroll AMS" and [n.name for n in dep.nodes] == NODES
        kinds = db.session.scalars(select(Event.kind).where(Event.deployment_id == dep_id)).all()
        assert "deployment.updated" not in kinds


def test_the_runbook_is_linked_from_step_pages_and_its_downloads_are_audited(app):
    dep_id = completed(app)
    alice = signed_in(app, "alice", "operator")
    step = alice.get(f"/deployments/{dep_id}/steps/quorum").get_data(as_text=True)
    assert f'href="/deployments/{dep_id}/runbook.ps1"' in step
    assert f'href="/deployments/{dep_id}/steps/quorum/runbook.ps1"' in step
    summary = alice.get(f"/deployments/{dep_id}/steps/summary").get_data(as_text=True)
    assert f'href="/deployments/{dep_id}/runbook.ps1"' in summary
    assert "/steps/summary/runbook.ps1" not in summary  # nothing to run there
    whole = alice.get(f"/deployments/{dep_id}/runbook.ps1")
    one = alice.get(f"/deployments/{dep_id}/steps/quorum/runbook.ps1")
    assert whole.status_code == one.status_code == 200
    with app.app_context():
        rows = db.session.scalars(
            select(AuditRecord)
            .where(AuditRecord.action == "export.runbook")
            .order_by(AuditRecord.seq)
        ).all()
        assert [(r.actor_name, r.target, r.details) for r in rows] == [
            ("alice", f"deployment:{dep_id}", {}),
            ("alice", f"deployment:{dep_id}", {"step": "quorum"}),
        ]


def test_another_guide_keeps_its_summary_page_without_the_cluster_deliverable(app):
    from app.deployments.service import create_deployment
    from app.guides import GUIDES
    from app.models import User

    other = next(key for key in GUIDES if key != "ams-failover-cluster")
    user(app, "alice", "operator")
    with app.app_context():
        owner = db.session.scalar(select(User).where(User.username == "alice"))
        dep_id = create_deployment(DEPLOYMENT, owner, guide_key=other).id
    alice = signed_in(app, "alice", "operator")
    page = alice.get(f"/deployments/{dep_id}/steps/summary")
    assert page.status_code == 200 and "data-summary" not in page.get_data(as_text=True)
    for path in ("history", "report"):
        assert alice.get(f"/deployments/{dep_id}/{path}").status_code == 200, path
    assert json.loads(alice.get(f"/deployments/{dep_id}/export.json").data)["summary"] is None
