"""One record of runs and actions for the API, the history and the export, and one masking rule:
a password planted straight in the database (past the input rules, as an old row could hold it)
never reaches an export, an API response or a history page."""

import json
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from app.api.schemas import NodeActionOut, RunOut
from app.deployments.service import create_deployment
from app.events.publish import publish
from app.extensions import db
from app.history.export import deployment_json
from app.masking import MASK
from app.models import Deployment, Event, NodeAction, StepRun, User, utcnow
from tests.handover.helpers import DEPLOYMENT, deployment, signed_in, user

PLANT = "Pl4nted-Pa55"
CONNECTION = f'Server=SQL1;Database=AccessManager;User ID=ams;Password = "{PLANT};x"'
INPUTS = {
    "ams_version": "3.0.1",
    "gmsa": "CORP\\gmsa-ams$",
    "sql_connection_string": CONNECTION,
    "license_key": PLANT,  # a declared secret field
    "db_password": PLANT,  # a secret by its name alone
}


def plant(app) -> int:
    """A deployment whose prerequisites inputs, run, check evidence, action and a timeline event
    hold a password-bearing connection string."""
    owner = user(app, "alice", "operator")
    dep_id = deployment(app, "alice", name="Planted")
    start = utcnow() - timedelta(minutes=5)
    with app.app_context():
        dep = db.session.get(Deployment, dep_id)
        dep.step("prerequisites").inputs = dict(INPUTS)
        run = StepRun(
            deployment_id=dep_id,
            step_key="prerequisites",
            attempt=1,
            status="failed",
            actor_id=owner,
            inputs=dict(INPUTS),
            outcome={
                "status": "needs_attention",
                "summary": f"Could not sign in with {CONNECTION}",
                "checks": [
                    {
                        "key": "sql",
                        "title": "SQL sign-in",
                        "status": "fail",
                        "node": "AMS1",
                        "evidence": f"Parameters\\ConnectionString is '{CONNECTION}'.",
                        "remediation": f"Use Pwd={PLANT} no more.",
                        "fix": None,
                    }
                ],
                "artifacts": {},
            },
            started_at=start,
            finished_at=start + timedelta(seconds=12),
        )
        run.actions = [
            NodeAction(
                node_name="AMS1",
                phase="detect",
                script="prereq_sql_facts",
                status="failed",
                try_count=1,
                error_category="script",
                error_message=f"Login failed: {CONNECTION}",
                result={"data": {"connection_string": CONNECTION, "sql_password": PLANT}},
                started_at=start,
                finished_at=start + timedelta(seconds=3),
            )
        ]
        db.session.add(run)
        db.session.commit()
        seq = publish(dep_id, "step.paused", {"reason": "placeholder"}, step_key="prerequisites")
        # An old row, written before payloads were masked on their way in.
        db.session.execute(
            update(Event)
            .where(Event.deployment_id == dep_id, Event.seq == seq["seq"])
            .values(payload={"reason": f"Paused on {CONNECTION}", "connection": CONNECTION})
        )
        db.session.commit()
    return dep_id


def _shown(text: str) -> str:
    assert PLANT not in text and "Pl4nted" not in text
    return text


def test_a_planted_password_never_reaches_the_history_the_export_or_the_api(app, api):
    dep_id = plant(app)
    alice = signed_in(app, "alice", "operator")
    page = _shown(alice.get(f"/deployments/{dep_id}/history").get_data(as_text=True))
    assert "Parameters\\ConnectionString is" in page and "Paused on Server=SQL1" in page
    assert "Login failed: Server=SQL1" in page
    _shown(alice.get(f"/deployments/{dep_id}/report").get_data(as_text=True))
    _shown(alice.get("/history.csv").get_data(as_text=True))
    export = _shown(alice.get(f"/deployments/{dep_id}/export.json").get_data(as_text=True))
    inputs = json.loads(export)["steps"][0]["inputs"]
    assert sorted(inputs) == ["ams_version", "gmsa", "sql_connection_string"]
    assert inputs["sql_connection_string"].endswith(f'Password = "{MASK}"')
    for path in ("", "/status", "/export", "/steps/prerequisites/plan"):
        response = api.get(f"/api/v1/deployments/{dep_id}{path}")
        assert response.status_code == 200, (path, response.get_json())
        _shown(response.get_data(as_text=True))
    run = _api_run(api, dep_id)
    assert run["inputs"]["sql_connection_string"].endswith(f'Password = "{MASK}"')
    assert run["actions"][0]["result"] == {
        "data": {"connection_string": run["inputs"]["sql_connection_string"]}
    }


def test_a_planted_password_never_reaches_the_step_page(app):
    """The step page renders its runs' rows straight (outcome, checks, an action's error): the
    same rule masks them there."""
    dep_id = plant(app)
    alice = signed_in(app, "alice", "operator")
    page = _shown(alice.get(f"/deployments/{dep_id}/steps/prerequisites").get_data(as_text=True))
    assert "Could not sign in with Server=SQL1" in page  # the outcome's summary, masked
    assert "Parameters\\ConnectionString is" in page  # a check's evidence
    assert "Login failed: Server=SQL1" in page  # the action's error
    resume = alice.get(f"/deployments/{dep_id}/resume")
    assert resume.status_code == 200
    _shown(resume.get_data(as_text=True))


def test_a_planted_password_is_masked_in_plans_and_runbooks(app, api):
    """The farm's database step passes the connection string to its script as a parameter."""
    user(app, "alice", "operator")
    with app.app_context():
        owner = db.session.scalar(select(User).where(User.username == "alice"))
        inputs = {"prerequisites": dict(INPUTS)}
        dep_id = create_deployment(DEPLOYMENT, owner, "ams-load-balancer", inputs).id
    plan = api.get(f"/api/v1/deployments/{dep_id}/steps/sql_database/plan").get_json()
    (first, *_) = plan["phases"][0]["actions"]
    assert first["parameters"]["Parameters"]["ConnectionString"].endswith(f'"{MASK}"')
    runbook = _shown(api.get(f"/api/v1/deployments/{dep_id}/runbook.ps1").get_data(as_text=True))
    assert "$Prerequisites_SqlConnectionString = 'Server=SQL1" in runbook
    assert "'ConnectionString' = $Prerequisites_SqlConnectionString" in runbook
    assert "DbPassword" not in runbook and "LicenseKey" not in runbook


def test_events_are_masked_on_their_way_into_the_log(app, api):
    user(app, "alice", "operator")
    dep_id = deployment(app, "alice", name="Fresh")
    with app.app_context():
        publish(dep_id, "node.output", {"line": CONNECTION, "db_password": PLANT}, node="AMS1")
        stored = db.session.scalars(select(Event.payload).where(Event.kind == "node.output")).one()
    assert stored == {"line": f'Server=SQL1;Database=AccessManager;User ID=ams;Password = "{MASK}"'}
    _shown(api.get(f"/api/v1/deployments/{dep_id}/events").get_data(as_text=True))


def test_old_event_rows_are_masked_in_the_events_api(app, api):
    dep_id = plant(app)
    _shown(api.get(f"/api/v1/deployments/{dep_id}/events").get_data(as_text=True))


def _api_run(api, dep_id: int) -> dict:
    steps = api.get(f"/api/v1/deployments/{dep_id}/status").get_json()["steps"]
    return next(s for s in steps if s["key"] == "prerequisites")["runs"][0]


def _export_attempt(api, dep_id: int) -> dict:
    steps = api.get(f"/api/v1/deployments/{dep_id}/export").get_json()["steps"]
    return next(s for s in steps if s["key"] == "prerequisites")["attempts"][0]


def test_the_api_and_the_export_show_a_run_with_the_same_names_and_values(app, api):
    dep_id = plant(app)
    run, attempt = _api_run(api, dep_id), _export_attempt(api, dep_id)
    assert attempt["kind"] == run["kind"] == "run" and run["seconds"] == 12.0
    assert {k: v for k, v in run.items() if k != "actions"} == {
        k: v for k, v in attempt.items() if k != "actions"
    }
    (action,) = run["actions"]
    (exported,) = attempt["actions"]
    # The export leaves the scripts' output to the API; everything else is the same.
    assert {k: v for k, v in action.items() if k != "result"} == exported
    assert action["try_count"] == 1 and action["error_message"].startswith("Login failed")
    assert action["started_at"] == exported["started_at"] and "T" in action["started_at"]


@pytest.mark.parametrize(("schema", "part"), [(RunOut, "run"), (NodeActionOut, "action")])
def test_the_openapi_schema_names_every_field_returned(app, api, schema, part):
    run = _api_run(api, plant(app))
    returned = run if part == "run" else run["actions"][0]
    assert set(schema().fields) == set(returned)


def test_the_api_export_is_the_document_the_history_page_offers(app, api):
    """Every part of the export reaches API clients, the Summary's facts included."""
    dep_id = plant(app)
    body = api.get(f"/api/v1/deployments/{dep_id}/export").get_json()
    with app.app_context():
        offered = json.loads(json.dumps(deployment_json(db.session.get(Deployment, dep_id))))
    assert set(body) == set(offered) and body["summary"] == offered["summary"]
    assert body["summary"]  # the cluster guide's deliverable, not an empty dict
