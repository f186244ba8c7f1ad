"""Needs-attention list, drift verdicts, and the pause notices (webhook and SMTP, real local servers)."""

import json
import socket
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

from aiosmtpd.controller import Controller

from app.extensions import db
from app.handover import drift, notify
from app.models import Deployment, StepRun, utcnow
from app.steps import Action, Check, Finish, Phase, RunOptions, Step
from tests.handover.helpers import deployment, signed_in, user


def test_attention_lists_paused_failed_interrupted_and_idle(app):
    user(app, "alice", "operator")
    ids = {
        name: deployment(app, "alice", name=name) for name in ("paused", "failed", "idle", "fresh")
    }
    with app.app_context():
        deps = {n: db.session.get(Deployment, i) for n, i in ids.items()}
        deps["paused"].status = "paused"
        deps["failed"].status = "paused"
        deps["failed"].step("prerequisites").status = "needs_attention"
        db.session.add(
            StepRun(deployment_id=ids["failed"], step_key="prerequisites", status="interrupted")
        )
        deps["idle"].status = "in_progress"
        deps["idle"].last_activity_at = utcnow() - timedelta(minutes=500)
        db.session.commit()
    page = signed_in(app, "hank", "helpdesk").get("/attention").get_data(as_text=True)
    assert "paused</td>" in page and "interrupted</td>" in page and "idle for 50" in page
    assert ">fresh<" not in page
    assert f"/deployments/{ids['failed']}/resume" in page


class Probe(Step):
    key, title, purpose = "probe", "Probe", "test"

    def __init__(self, state_changes: bool):
        self.state_changes = state_changes

    def advance(self, view):
        if view.phase("detect") is None:
            return Phase("detect", "Detect", (Action("N1", "cluster_detect"),))
        if self.state_changes:
            return Phase("apply", "Start the service", (Action("N1", "x"),), changes_state=True)
        return Finish("done", "All good", (Check("svc", "Service", "pass", "Running"),))


class View:
    def __init__(self, results):
        self.results, self.options = results, RunOptions(mode="verify")

    def phase(self, name):
        return self.results.get(name)


def test_drift_runs_read_only_phases_then_judges():
    assert drift.decide(Probe(False), View({})).name == "detect"
    assert drift.decide(Probe(False), View({"detect": {}})).status == "done"
    verdict = drift.decide(Probe(True), View({"detect": {}}))
    assert verdict.status == "needs_attention" and "Start the service" in verdict.summary


def test_changes_show_what_differs_from_the_finished_step():
    before = {"checks": [{"key": "svc", "node": "N1", "title": "Service", "status": "pass"}]}
    after = {
        "checks": [
            {
                "key": "svc",
                "node": "N1",
                "title": "Service",
                "status": "fail",
                "evidence": "lithnetams is Stopped",
            }
        ]
    }
    assert drift.changes(before, after) == [
        {
            "check": "Service",
            "node": "N1",
            "before": "pass",
            "after": "fail",
            "evidence": "lithnetams is Stopped",
            "remediation": "",
        }
    ]
    assert drift.changes(before, before) == []


def test_only_steps_that_verify_without_changes_are_rechecked(app):
    user(app, "alice", "operator")
    dep_id = deployment(app, "alice")
    with app.app_context():
        dep = db.session.get(Deployment, dep_id)
        for key in ("prerequisites", "base_cluster", "quorum"):
            dep.step(key).status = "done"
        dep.step("failover_test").status = "done"
        assert drift.steps_to_verify(dep) == ["prerequisites", "base_cluster", "quorum"]


class Hook(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.received.append((self.headers["Content-Type"], json.loads(body)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        return "250 OK"


def test_pause_notice_by_webhook_and_smtp(app, monkeypatch):
    user(app, "alice", "operator")
    dep_id = deployment(app, "alice", name="Payroll")
    http = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    inbox = Inbox()
    smtp_port = free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    try:
        for key, value in {
            "NOTIFY_WEBHOOK_URL": f"http://127.0.0.1:{http.server_port}/hook",
            "NOTIFY_SMTP_HOST": "127.0.0.1",
            "NOTIFY_SMTP_PORT": smtp_port,
            "NOTIFY_SMTP_TO": "lead@example.test",
            "PUBLIC_URL": "https://wizard.example.test",
        }.items():
            monkeypatch.setitem(app.config, key, value)
        with app.app_context():
            sent = notify.on_paused(dep_id, "base_cluster", "Validation failed on AMS2")
    finally:
        http.shutdown()
        smtp.stop()
    assert sent == ["webhook", "smtp"]
    content_type, body = Hook.received[-1]
    assert content_type == "application/json"
    assert body["deployment"]["name"] == "Payroll" and body["step"]["title"] == "Base cluster"
    assert body["reason"] == "Validation failed on AMS2"
    assert body["url"] == f"https://wizard.example.test/deployments/{dep_id}/resume"
    mail = inbox.messages[-1]
    assert mail.rcpt_tos == ["lead@example.test"] and b"Validation failed on AMS2" in mail.content


def test_notice_failure_never_raises(app, monkeypatch):
    user(app, "alice", "operator")
    dep_id = deployment(app, "alice")
    monkeypatch.setitem(app.config, "NOTIFY_WEBHOOK_URL", "http://127.0.0.1:9/nothing")
    monkeypatch.setitem(app.config, "NOTIFY_TIMEOUT_SECONDS", 1)
    with app.app_context():
        assert notify.on_paused(dep_id, "quorum", "x") == []


def test_resume_page_asks_for_own_credentials(app):
    alice = signed_in(app, "alice", "operator")
    dep_id = deployment(app, "alice")
    html = alice.get(f"/deployments/{dep_id}/resume").get_data(as_text=True)
    assert "enter your own WinRM account" in html and 'name="password"' in html


class Licensed(Step):
    """A step whose verdict asks whether a secret was entered (like the license key check)."""

    key, title, purpose = "licensed", "Licensed", "test"
    secret_fields = ("license_key",)

    def advance(self, view):
        if view.phase("detect") is None:
            return Phase("detect", "Detect", (Action("N1", "cluster_detect"),))
        entered = "license_key" in view.secret_names
        return Finish("done" if entered else "needs_attention", "License", ())


def test_a_wiped_step_secret_is_not_drift():
    """Take-over wipes the vault; the new driver enters only WinRM credentials: no false drift."""
    from app.steps import RunView

    view = RunView("d", "corp.test", (), {}, {}, frozenset({"winrm_password"}), {"detect": {}})
    view.options = RunOptions(mode="verify")
    assert drift.decide(Licensed(), view).status == "done"
    assert view.secret_names == frozenset({"winrm_password"})  # the run's own view is unchanged
