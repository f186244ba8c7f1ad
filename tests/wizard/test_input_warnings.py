"""Advice on saved inputs that stops neither the save nor a run: the step page shows it beside the
field before the operator runs the step (the quorum witness on one of the cluster's own nodes)."""

import html

import pytest

from app.extensions import db
from app.models import Deployment
from tests.conftest import csrf_token
from tests.deployment_form import create, deployment_id

WARNING = 'data-input-warning="share_path"'


@pytest.fixture
def quorum_url(admin_client, app):
    assert create(admin_client).status_code == 302  # nodes AMS1 (127.0.0.1), AMS2 (localhost)
    return f"/deployments/{deployment_id(app)}/steps/quorum"


def _save(client, url: str, **inputs):
    return client.post(url, data={"csrf_token": csrf_token(client, url), **inputs})


@pytest.mark.parametrize(
    ("share_path", "node"),
    [("\\\\AMS1\\witness", "AMS1"), ("\\\\localhost\\witness$", "AMS2")],
)
def test_a_witness_share_on_a_cluster_node_saves_and_the_page_warns(
    admin_client, app, quorum_url, share_path, node
):
    response = _save(admin_client, quorum_url, witness_type="file_share", share_path=share_path)
    assert response.status_code == 302  # saved: it is advice, not a refusal
    page = admin_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Quorum witness: inputs saved." in page
    assert WARNING in page
    warning = html.unescape(page.split(WARNING, 1)[1].split("</p>", 1)[0])
    assert f"{share_path} is served by {node}, one of this cluster's own nodes" in warning
    assert "outside the cluster" in warning
    # Before the Run panel, where the operator reads it before running the step.
    assert page.index(WARNING) < page.index('id="run-panel"')
    with app.app_context():
        inputs = db.session.scalar(db.select(Deployment)).step("quorum").inputs
        assert inputs["share_path"] == share_path


@pytest.mark.parametrize(
    "inputs",
    [
        {"witness_type": "file_share", "share_path": "\\\\FS1\\witness"},
        {"witness_type": "cloud", "share_path": "\\\\AMS1\\witness", "cloud_account": "amswitness"},
        {"witness_type": "none"},
    ],
)
def test_no_warning_for_a_witness_off_the_cluster(admin_client, quorum_url, inputs):
    response = _save(admin_client, quorum_url, **inputs)
    assert response.status_code == 302
    assert WARNING not in admin_client.get(quorum_url).get_data(as_text=True)


def test_nothing_saved_nothing_warned(admin_client, quorum_url):
    assert WARNING not in admin_client.get(quorum_url).get_data(as_text=True)
