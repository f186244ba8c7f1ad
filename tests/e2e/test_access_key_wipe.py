"""The cloud witness access key: saved through the step's form into the vault, handed to the node
as a parameter, wiped from the vault as soon as the quorum step succeeds (as its screen says),
and never written to an event, an action row, a log record or a page."""

import json
import logging

import pytest

from app.execution import vault
from app.extensions import db
from app.models import Credential, Event, NodeAction
from tests import lab_world
from tests.conftest import login
from tests.lab_world import (
    mark_done,
    new_deployment,
    operator_id,
    outcome_text,
    save_inputs,
    start,
    start_world,
)

pytestmark = pytest.mark.slow
NODES = ["AMS1", "AMS2"]
ACCESS_KEY = "Zm9vYmFyLWtleS1mb3ItdGhlLXdpdG5lc3M9PQ+/AKEY=="


class Everything(logging.Handler):
    """Every log record of the test process, formatted (pytest's logging plugin may be off)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def logs():
    handler = Everything()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


def _held(deployment_id: int) -> dict:
    db.session.expire_all()
    try:
        return vault.load_secrets(deployment_id)[1]
    finally:
        db.session.commit()


def _pages(app, deployment_id: int) -> str:
    client = app.test_client()
    login(client, "e2e-operator", "not-used-in-these-tests")
    urls = [
        f"/deployments/{deployment_id}/steps/quorum",
        f"/deployments/{deployment_id}/history",
        f"/deployments/{deployment_id}/report",
        f"/deployments/{deployment_id}/export.json",
        f"/deployments/{deployment_id}/runbook.ps1",
        f"/deployments/{deployment_id}/events.json",
    ]
    bodies = []
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        bodies.append(response.get_data(as_text=True))
    return "\n".join(bodies)


def test_access_key_is_wiped_when_the_quorum_step_succeeds(tmp_path, e2e, lab_calls, logs):
    store, server = start_world(tmp_path, NODES, scenario="existing_cluster")
    try:
        deployment_id = new_deployment(server, store, name="Cloud witness")
        operator_id()
        mark_done(deployment_id, ("prerequisites", "base_cluster"))
        quorum = {"witness_type": "cloud", "cloud_account": "amswitness"}
        save_inputs(deployment_id, "quorum", {**quorum, "cloud_access_key": f"  {ACCESS_KEY} "})
        assert _held(deployment_id)["cloud_access_key"] == ACCESS_KEY  # kept until the step runs
        run = start(deployment_id, "quorum")
        assert run.status == "succeeded", outcome_text(run)
    finally:
        server.stop()

    [witness] = lab_calls.of("quorum_set")  # the key reached the node, as a parameter
    assert witness.params["AccessKey"] == ACCESS_KEY
    held = _held(deployment_id)
    assert "cloud_access_key" not in held
    assert held[vault.WINRM_PASSWORD]  # the WinRM credentials stay for the steps still to run
    rows = db.session.scalars(db.select(Credential)).all()
    assert len(rows) == 1 and ACCESS_KEY.encode() not in rows[0].secret

    events = json.dumps([e.payload for e in db.session.scalars(db.select(Event))])
    actions = db.session.scalars(db.select(NodeAction)).all()
    recorded = json.dumps([(a.parameters, a.result, a.error_message) for a in actions], default=str)
    [apply] = [a for a in actions if a.script == "quorum_set"]
    assert apply.secret_params == {"AccessKey": "cloud_access_key"}  # named, never the value
    worker_log = lab_world.WORKER.log_path.read_text(errors="replace")
    pages = _pages(e2e, deployment_id)
    for where, text in {
        "events": events,
        "actions": recorded,
        "worker log": worker_log,
        "test process log": "\n".join(logs.lines),
        "pages": pages,
    }.items():
        assert ACCESS_KEY not in text, where
