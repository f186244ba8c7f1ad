"""Every screen renders for a signed-in user; anonymous users are sent to login; no CSRF, no POST."""

import re

import pytest

from app.extensions import db
from app.guides import get_guide
from app.lab import scenarios
from app.lab.store import LabStore
from app.models import Credential, Deployment, DeploymentStep, StepRun
from app.wizard.runs import step_page_context
from tests.conftest import csrf_token, login
from tests.deployment_form import NODES, create, deployment_id


def test_anonymous_is_redirected_to_login(client, app):
    for url in ["/", "/deployments/new", "/deployments/1/", "/deployments/1/steps/quorum"]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert "/login" in response.headers["Location"]


def test_login_page_is_public(client, app):
    assert client.get("/login").status_code == 200


def test_wrong_password_is_refused(client, make_user):
    make_user("bob", "operator")
    response = login(client, "bob", "wrong")
    assert "wrong password" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_post_without_csrf_is_refused(admin_client):
    response = admin_client.post("/deployments/new", data=NODES)
    assert response.status_code == 400
    assert b"CSRF" in response.data


def test_login_without_csrf_is_refused(client, make_user):
    make_user("carol", "operator")
    response = client.post("/login", data={"username": "carol", "password": "x"})
    assert response.status_code == 400


def test_create_deployment_then_every_screen_renders(admin_client, app):
    response = create(admin_client)
    assert response.status_code == 302
    dep = deployment_id(app)
    assert admin_client.get("/").status_code == 200
    for step in get_guide("ams-failover-cluster").steps:
        page = admin_client.get(f"/deployments/{dep}/steps/{step.key}")
        assert page.status_code == 200, step.key
        html = page.get_data(as_text=True)
        assert step.title in html
        assert 'aria-current="step"' in html


def test_unknown_step_is_404(admin_client, app):
    create(admin_client)
    assert admin_client.get(f"/deployments/{deployment_id(app)}/steps/nope").status_code == 404


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("nodes-1-name", "AMS1", "more than once"),
        ("nodes-0-name", "THIS-NAME-IS-TOO-LONG", "15"),
        ("domain_fqdn", "corp", "fully qualified"),
        ("nodes-0-host", "bad host!", "not a valid host"),
        ("nodes-0-port", "70000", "outside 1-65535"),
        ("name", "", "required"),
    ],
)
def test_bad_deployment_input_saves_nothing(admin_client, app, field, value, message):
    response = create(admin_client, **{field: value})
    assert response.status_code == 200
    assert message in response.get_data(as_text=True)
    assert deployment_id(app) is None


def test_step_inputs_are_restored_after_leaving(admin_client, app):
    create(admin_client)
    dep = deployment_id(app)
    url = f"/deployments/{dep}/steps/base_cluster"
    data = {
        "cluster_name": "amsclu",
        "cluster_address": "10.20.0.50",
        "run_validation": "y",
        "csrf_token": csrf_token(admin_client, url),
    }
    assert admin_client.post(url, data=data).status_code == 302
    resumed = admin_client.get(f"/deployments/{dep}/", follow_redirects=True)
    html = resumed.get_data(as_text=True)
    assert 'value="AMSCLU"' in html
    assert 'value="10.20.0.50"' in html


def test_step_address_must_differ_from_node_hosts(admin_client, app):
    create(admin_client, **{"nodes-0-host": "10.20.0.11"})
    dep = deployment_id(app)
    url = f"/deployments/{dep}/steps/base_cluster"
    data = {
        "cluster_name": "amsclu",
        "cluster_address": "10.20.0.11",
        "csrf_token": csrf_token(admin_client, url),
    }
    response = admin_client.post(url, data=data)
    assert response.status_code == 400
    assert "is the address of node" in response.get_data(as_text=True)
    with app.app_context():
        record = db.session.get(Deployment, dep).step("base_cluster")
        assert record.inputs == {}


def test_secret_input_never_rendered(admin_client, app):
    create(admin_client)
    dep = deployment_id(app)
    url = f"/deployments/{dep}/steps/prerequisites"
    secret = "LIC-CANARY-0123456789-ABCDEF"
    data = {
        "ams_version": "2.1.1069.0",
        "gmsa": "CORP\\svc-ams$",
        "sql_connection_string": "Server=sql1.corp.example.test;Database=AccessManager;"
        "Integrated Security=true",
        "license_key": secret,
        "csrf_token": csrf_token(admin_client, url),
    }
    assert admin_client.post(url, data=data).status_code == 302
    html = admin_client.get(url).get_data(as_text=True)
    assert secret not in html
    assert "stored - leave empty to keep" in html
    with app.app_context():
        record = db.session.get(Deployment, dep).step("prerequisites")
        assert "license_key" not in record.inputs
        assert record.inputs["gmsa"] == "CORP\\svc-ams$"


def test_logout_needs_post_with_csrf(admin_client):
    assert admin_client.get("/logout").status_code == 405
    token = re.search(r'name="csrf_token" value="([^"]+)"', admin_client.get("/").get_data(True))
    assert admin_client.post("/logout", data={"csrf_token": token.group(1)}).status_code == 302
    assert admin_client.get("/").status_code == 302


@pytest.fixture
def lab_running(app):
    """A demo lab's state under the instance folder (as `make run` leaves it), removed after."""
    path = app.config["INSTANCE_DIR"] / "lab" / "state.json"
    LabStore(path).replace(scenarios.default_state(["AMS1", "AMS2"]))
    yield
    path.unlink()


def test_demo_lab_prefills_nodes_and_step_values_but_no_secret(admin_client, app, lab_running):
    page = admin_client.get("/deployments/new?from_lab=1").get_data(as_text=True)
    assert 'value="AMS1"' in page and 'value="corp.example.test"' in page
    data = {
        "name": "Demo lab",
        "domain_fqdn": "corp.example.test",
        "from_lab": "1",
        "csrf_token": csrf_token(admin_client, "/deployments/new?from_lab=1"),
    }
    for i, name in enumerate(["AMS1", "AMS2"]):
        data |= {
            f"nodes-{i}-name": name,
            f"nodes-{i}-host": "127.0.0.1",
            f"nodes-{i}-port": str(55985 + i),
            f"nodes-{i}-transport": "http",
            f"nodes-{i}-auth": "ntlm",
        }
    assert admin_client.post("/deployments/new?from_lab=1", data=data).status_code == 302
    with app.app_context():
        deployment = db.session.get(Deployment, deployment_id(app))
        prereq = deployment.step("prerequisites").inputs
        assert prereq["gmsa"] == "CORP\\svc-ams$"
        assert "license_key" not in prereq
        assert deployment.step("base_cluster").inputs["cluster_name"] == "AMSCLU"


def test_install_step_tells_how_to_play_the_operator_against_the_demo_lab(
    admin_client, app, lab_running
):
    lab_nodes = {"nodes-1-host": "127.0.0.1"}  # both nodes on loopback at the lab's ports
    assert create(admin_client, **lab_nodes).status_code == 302
    base = f"/deployments/{deployment_id(app)}/steps"
    page = admin_client.get(f"{base}/install_ams").get_data(as_text=True)
    assert "flask lab install-ams" in page and "flask lab configure-ams" in page
    assert "flask lab install-ams" not in admin_client.get(f"{base}/quorum").get_data(as_text=True)

    app.config["LAB_ENABLED"] = False  # production: no lab hint, whatever the nodes
    try:
        page = admin_client.get(f"{base}/install_ams").get_data(as_text=True)
    finally:
        app.config["LAB_ENABLED"] = True
    assert "flask lab install-ams" not in page


def test_real_nodes_never_get_the_demo_lab_hint(admin_client, app, lab_running):
    assert create(admin_client, **{"nodes-1-host": "ams2.corp.example.test"}).status_code == 302
    page = admin_client.get(f"/deployments/{deployment_id(app)}/steps/install_ams")
    assert page.status_code == 200
    assert "flask lab" not in page.get_data(as_text=True)


def test_base_cluster_page_links_the_kept_test_cluster_report(admin_client, app):
    create(admin_client)
    dep = deployment_id(app)
    with app.app_context():
        outcome = {
            "status": "done",
            "summary": "Cluster AMSCLU created.",
            "checks": [],
            "failed_nodes": [],
            "artifacts": {
                "test_cluster_report": {"outcome": "passed with warnings", "html": "<p>"}
            },
        }
        db.session.add(
            StepRun(deployment_id=dep, step_key="base_cluster", status="succeeded", outcome=outcome)
        )
        db.session.commit()
    html = admin_client.get(f"/deployments/{dep}/steps/base_cluster").get_data(as_text=True)
    assert "Cluster validation: passed with warnings." in html
    assert f"/deployments/{dep}/history#tc-title" in html


def test_running_a_step_before_earlier_ones_is_refused_and_keeps_no_credentials(admin_client, app):
    create(admin_client)
    dep = deployment_id(app)
    url = f"/deployments/{dep}/steps/quorum"
    data = {
        "username": "CORP\\admin",
        "password": "Canary-Pw-1",
        "csrf_token": csrf_token(admin_client, url),
    }
    page = admin_client.post(f"{url}/run", data=data, follow_redirects=True)
    assert "Finish or skip &#39;Prerequisites&#39;" in page.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(StepRun)) == 0
        assert db.session.scalar(db.select(db.func.count()).select_from(Credential)) == 0


def test_favicon_ico_leads_anyone_to_the_icon(client):
    """Browsers ask for /favicon.ico where a page names no icon (a raw JSON view, say)."""
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert response.headers["Location"].endswith("/static/img/favicon.svg")
    icon = client.get(response.headers["Location"])
    assert icon.status_code == 200
    assert icon.mimetype == "image/svg+xml"
    assert icon.data.lstrip().startswith(b"<svg")
    icon.close()


def test_step_page_never_shows_an_ended_run_beside_a_step_in_progress(admin_client, app):
    """Each read sees the latest commit: a run that ends after the page read the deployment but
    before it read the runs must not leave the page with a finished run and a step "in
    progress" (the page would then neither reload nor offer the next step)."""
    create(admin_client)
    dep = deployment_id(app)
    with app.app_context():
        step = db.session.scalars(
            db.select(DeploymentStep).filter_by(deployment_id=dep, step_key="prerequisites")
        ).one()
        step.status = "in_progress"
        db.session.add(StepRun(deployment_id=dep, step_key="prerequisites", status="running"))
        db.session.commit()
    with app.test_request_context():
        deployment = db.session.get(Deployment, dep)
        assert deployment.step("prerequisites").status == "in_progress"  # read by the page
        with db.engine.begin() as other:  # the worker ends the run meanwhile, in one commit
            other.execute(
                db.update(StepRun).where(StepRun.deployment_id == dep).values(status="succeeded")
            )
            other.execute(
                db.update(DeploymentStep)
                .where(DeploymentStep.deployment_id == dep)
                .where(DeploymentStep.step_key == "prerequisites")
                .values(status="done")
            )
        guide = get_guide(deployment.guide_key)
        ctx = step_page_context(deployment, guide, guide.step("prerequisites"))
        assert ctx["run"].status == "succeeded"
        assert ctx["record"].status == "done"
        assert next(s for s in ctx["sidebar"] if s["key"] == "prerequisites")["status"] == "done"
