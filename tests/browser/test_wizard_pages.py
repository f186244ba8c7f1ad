"""The wizard in a real browser: inputs survive a reload, bad input is refused field by field, the
basics of accessibility hold on every screen, and every screen is photographed for review."""

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from app.extensions import db
from app.models import Deployment, DeploymentStep, NodeAction, StepRun, utcnow

pytestmark = pytest.mark.browser

STEPS = (
    "prerequisites",
    "base_cluster",
    "quorum",
    "install_ams",
    "cluster_role",
    "failover_test",
    "summary",
)
PREREQUISITES = {
    "Access Manager version to install": "2.1.1069.0",
    "Service account (gMSA)": "CORP\\svc-ams$",
    "SQL Server connection string": (
        "Server=sql01.corp.example.com;Database=AccessManager;Integrated Security=true"
    ),
}

# Every visible form control has an accessible name from a <label>, aria-label or aria-labelledby.
UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea')]
  .filter(el => el.type !== 'hidden')
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                && !el.getAttribute('aria-labelledby'))
  .map(el => el.outerHTML)"""


def _create_deployment(page, auth: str = "negotiate") -> int:
    page.get_by_role("link", name="New deployment").first.click()
    page.get_by_label("Deployment name").fill("Contoso AMS")
    page.get_by_label("Active Directory domain").fill("corp.example.com")
    for i in (0, 1):
        page.locator(f"#nodes-{i}-name").fill(f"AMS-NODE{i + 1}")
        page.locator(f"#nodes-{i}-host").fill(f"ams-node{i + 1}.corp.example.com")
        page.locator(f"#nodes-{i}-auth").select_option(auth)
    page.get_by_role("button", name="Create deployment").click()
    page.wait_for_url(re.compile(r"/deployments/\d+/steps/prerequisites$"))
    return int(re.search(r"/deployments/(\d+)/", page.url).group(1))


def test_inputs_are_saved_and_restored_after_reload(signed_in, app, shot):
    page = signed_in
    deployment_id = _create_deployment(page, auth="credssp")
    expect(page.locator(".flash-success")).to_contain_text("created")

    for label, value in PREREQUISITES.items():
        page.get_by_label(label).fill(value)
    page.get_by_label("Enterprise license key").fill("LICENSE-0123456789-ABCDEF")
    page.get_by_role("button", name="Save inputs").click()
    expect(page.locator(".flash-success")).to_contain_text("Prerequisites: inputs saved")
    shot(page, "step-1-prerequisites-saved")

    page.get_by_role("link", name=re.compile("Base cluster")).last.click()
    page.wait_for_url("**/steps/base_cluster")
    page.get_by_label("Cluster name").fill("amsclu01")
    page.get_by_label("Cluster static IP address").fill("10.0.0.50")
    page.get_by_label("Run cluster validation (Test-Cluster) first").uncheck()
    page.get_by_role("button", name="Save inputs").click()
    expect(page.locator(".flash-success")).to_contain_text("Base cluster: inputs saved")

    page.reload()
    expect(page.get_by_label("Cluster name")).to_have_value("AMSCLU01")  # normalised by the server
    expect(page.get_by_label("Cluster static IP address")).to_have_value("10.0.0.50")
    expect(page.get_by_label("Run cluster validation (Test-Cluster) first")).not_to_be_checked()
    shot(page, "step-2-base-cluster-restored")

    page.goto(f"/deployments/{deployment_id}/steps/prerequisites")
    for label, value in PREREQUISITES.items():
        expect(page.get_by_label(label)).to_have_value(value)
    secret = page.get_by_label("Enterprise license key")
    expect(secret).to_have_value("")  # a secret is never sent back to the browser
    expect(secret).to_have_attribute("placeholder", re.compile("stored"))
    assert "LICENSE-0123456789" not in page.content()


def test_bad_input_is_explained_per_field_and_nothing_is_saved(signed_in, app, deployment_id, shot):
    page = signed_in
    page.goto(f"/deployments/{deployment_id}/steps/prerequisites")
    page.get_by_label("Access Manager version to install").fill("two point one")
    page.get_by_label("Service account (gMSA)").fill("svc-ams")
    page.get_by_label("SQL Server connection string").fill(
        "Server=.\\SQLEXPRESS;Database=AccessManager;Integrated Security=true"
    )
    page.get_by_role("button", name="Save inputs").click()

    expect(page.locator(".flash-error")).to_contain_text("nothing was saved")
    version = page.get_by_label("Access Manager version to install")
    expect(version).to_have_attribute("aria-invalid", "true")
    expect(version).to_have_value("two point one")  # what was typed stays to be corrected
    described = version.get_attribute("aria-describedby").split()
    message = page.locator(f"#{described[-1]}")
    expect(message).to_contain_text("Major.Minor.Build")
    expect(page.locator(".field.invalid")).to_have_count(3)
    expect(page.locator("#gmsa-error")).to_contain_text("DOMAIN\\name$")
    expect(page.locator("#sql_connection_string-error")).to_contain_text("Express")
    expect(version).to_be_focused()  # keyboard users land on the first problem
    border = version.evaluate("el => getComputedStyle(el).borderTopColor")
    assert border == "rgb(185, 28, 28)"
    shot(page, "step-1-prerequisites-errors")

    with app.app_context():
        step = db.session.scalar(
            db.select(DeploymentStep).where(
                DeploymentStep.deployment_id == deployment_id,
                DeploymentStep.step_key == "prerequisites",
            )
        )
        assert not step.inputs
    page.goto(f"/deployments/{deployment_id}/steps/prerequisites")
    expect(page.get_by_label("Access Manager version to install")).to_have_value("")


def test_new_deployment_errors_and_list(signed_in, shot):
    page = signed_in
    shot(page, "deployments-empty")
    page.get_by_role("link", name="New deployment").first.click()
    page.locator("#nodes-0-name").fill("NODE1")
    page.locator("#nodes-1-name").fill("NODE1")
    page.get_by_label("Active Directory domain").fill("corp")
    page.get_by_role("button", name="Create deployment").click()
    expect(page.get_by_label("Deployment name")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#domain_fqdn-error")).to_contain_text("fully qualified")
    expect(page.locator(".error").first).to_be_visible()
    assert page.evaluate(UNLABELLED) == []
    shot(page, "deployment-new-errors")
    _create_deployment(page)
    page.get_by_role("link", name="Deployments").first.click()
    expect(page.get_by_role("link", name="Contoso AMS")).to_be_visible()
    shot(page, "deployments-list")


def test_login_screen(page, user, shot):
    page.goto("/login")
    assert page.evaluate(UNLABELLED) == []
    expect(page.get_by_label("Username")).to_be_focused()
    shot(page, "login")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".flash-error")).to_contain_text("wrong password")
    shot(page, "login-failed")


def test_every_step_screen_is_labelled_and_marks_the_current_step(signed_in, deployment_id, shot):
    page = signed_in
    for number, key in enumerate(STEPS, start=1):
        page.goto(f"/deployments/{deployment_id}/steps/{key}")
        current = page.locator('.steps [aria-current="step"]')
        expect(current).to_have_count(1)
        assert current.get_attribute("href").endswith(f"/steps/{key}")
        expect(current.locator(".step-num")).to_have_text(str(number))
        assert page.evaluate(UNLABELLED) == [], key
        expect(page.locator("h1")).to_have_count(1)
        shot(page, f"step-{number}-{key}")


def _seed_failed_run(app, deployment_id: int) -> None:
    """A finished attempt with node rows, checks and a pause, as the service records it."""
    with app.app_context():
        deployment = db.session.get(Deployment, deployment_id)
        record = deployment.step("prerequisites")
        record.status = "needs_attention"
        record.inputs = {
            "ams_version": "2.1.1069.0",
            "gmsa": "CORP\\svc-ams$",
            "sql_connection_string": "Server=sql01;Database=AMS;Integrated Security=true",
        }
        now = utcnow()
        run = StepRun(
            deployment_id=deployment_id,
            step_key="prerequisites",
            attempt=1,
            status="failed",
            started_at=now - timedelta(seconds=2.4),
            finished_at=now,
            outcome={
                "summary": "2 checks failed on AMS-NODE2; fix them and run the checks again.",
                "failed_nodes": ["AMS-NODE2"],
                "checks": [
                    {
                        "title": "WinRM reachable",
                        "node": "AMS-NODE1",
                        "status": "pass",
                        "evidence": "WSMan 3.0",
                        "remediation": "",
                    },
                    {
                        "title": "KDS root key usable",
                        "node": None,
                        "status": "warn",
                        "evidence": "Effective in 7 h",
                        "remediation": "Wait 10 hours after creating it.",
                    },
                    {
                        "title": "SQL Server reachable",
                        "node": "AMS-NODE2",
                        "status": "fail",
                        "evidence": "TCP 1433: connection refused",
                        "remediation": "Open TCP 1433 from the node to sql01.",
                    },
                    {
                        "title": "Edition",
                        "node": None,
                        "status": "info",
                        "evidence": "Enterprise",
                        "remediation": "",
                    },
                ],
            },
        )
        run.actions = [
            NodeAction(
                node_name="AMS-NODE1",
                phase="detect",
                script="Test-AmsPrerequisites",
                status="succeeded",
                progress=100,
            ),
            NodeAction(
                node_name="AMS-NODE2",
                phase="detect",
                script="Test-AmsPrerequisites",
                status="failed",
                progress=60,
                error_category="script_error",
                error_message="SQL Server sql01 refused the connection.",
            ),
        ]
        db.session.add(run)
        db.session.commit()


def test_run_outcome_decision_narrow_and_print_screens(app, signed_in, deployment_id, shot):
    page = signed_in
    _seed_failed_run(app, deployment_id)
    page.goto(f"/deployments/{deployment_id}/steps/prerequisites")
    expect(page.locator(".badge-fail")).to_have_count(1)
    expect(page.locator("fieldset legend", has_text="How do you want to continue?")).to_be_visible()
    expect(page.locator(".elapsed").first).to_have_text("took 2.4 s")  # not "0:02"
    assert page.evaluate(UNLABELLED) == []
    shot(page, "step-1-outcome-needs-attention")

    page.set_viewport_size({"width": 420, "height": 900})
    # Nothing pushes the page sideways on a phone; wide tables scroll inside their own box.
    assert page.evaluate("document.documentElement.scrollWidth") <= 420
    shot(page, "step-1-narrow", full_page=False)
    page.locator(".run-status").scroll_into_view_if_needed()
    shot(page, "step-1-narrow-run", full_page=False)
    page.evaluate("window.scrollTo(0, 0)")
    sidebar_box = page.locator(".steps").bounding_box()
    body_box = page.locator(".step-body").bounding_box()
    assert sidebar_box["y"] + sidebar_box["height"] <= body_box["y"] + 1  # sidebar above content

    page.set_viewport_size({"width": 1100, "height": 900})
    page.emulate_media(media="print")
    expect(page.locator(".topbar")).to_be_hidden()
    expect(page.locator(".log")).to_be_hidden()
    expect(page.locator(".outcome")).to_be_visible()
    shot(page, "step-1-print")
