"""The run panel says which phase of how many a running attempt is in, rendered by the server and
kept up to date by the live view as phases start."""

import pytest
from playwright.sync_api import expect

from app.events.publish import publish
from app.extensions import db
from app.models import Deployment, NodeAction, StepRun, utcnow

pytestmark = pytest.mark.browser
STEP = "prerequisites"


def test_phase_count_is_rendered_then_follows_the_live_phases(app, signed_in, deployment_id, shot):
    page = signed_in
    with app.app_context():
        db.session.get(Deployment, deployment_id).step(STEP).inputs = {
            "ams_version": "2.1.1069.0",
            "gmsa": "CORP\\svc-ams$",
            "sql_connection_string": "Server=sql01;Database=AMS;Integrated Security=true",
        }
        run = StepRun(
            deployment_id=deployment_id,
            step_key=STEP,
            attempt=1,
            status="running",
            phase="probe",
            started_at=utcnow(),
        )
        run.actions = [
            NodeAction(node_name=n, phase="probe", script="connection_probe", status="running")
            for n in ("AMS-NODE1", "AMS-NODE2")
        ]
        db.session.add(run)
        db.session.commit()
        run_id = run.id
    page.goto(f"/deployments/{deployment_id}/steps/{STEP}")
    page.wait_for_function("() => window.amswLive && window.amswLive.ready", timeout=15_000)
    page.wait_for_function(
        "() => document.querySelector('[data-conn]').dataset.state === 'connected'"
    )
    planned = page.locator(".plan details").count()
    assert planned >= 2  # the plan lists the phases the step may run
    line = page.locator("[data-phase-count]")
    expect(line).to_have_text(f"Phase 1 of {planned}: Connect to every node")

    with app.app_context():
        payload = {"phase": "facts", "title": "Check every node", "actions": []}
        publish(deployment_id, "phase.started", payload, step_key=STEP, step_run_id=run_id)
    expect(line).to_have_text(f"Phase 2 of {planned}: Check every node")
    # The same phase again (a replay after a reconnect) does not count twice.
    with app.app_context():
        publish(deployment_id, "phase.started", payload, step_key=STEP, step_run_id=run_id)
        publish(deployment_id, "node.output", {"text": "marker"}, step_key=STEP)
    page.wait_for_function("() => window.amswLive.lastSeq() >= 3")
    expect(line).to_have_text(f"Phase 2 of {planned}: Check every node")
    line.scroll_into_view_if_needed()
    shot(page, "run-phase-count", full_page=False)
