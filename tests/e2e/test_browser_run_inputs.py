"""Run uses what is on the screen, and a refused password is not tried again: Chromium against
the lab through the real Celery worker.

1. On Prerequisites the operator types every value and the license key and presses Run without
   saving: the run sees the key (its license check passes) and the inputs are saved with it.
2. A wrong WinRM password: the nodes refuse it; the pause panel asks for credentials again (no
   offer of the stored ones), Continue with the same refused password is refused by the server
   and tries nothing on the nodes; the right password retries the step.

Needs Chromium at /usr/bin/chromium and Playwright: missing either fails the test.
"""

import re

import pytest

from app.deployments.service import create_deployment
from app.execution import vault
from app.extensions import db
from app.models import Deployment, Event, NodeAction, StepRun, User
from tests.conftest import ARTIFACTS
from tests.e2e.conftest import open_page, sign_in
from tests.execution.harness import LAB_PASSWORD, LAB_USER, make_user
from tests.lab_world import LICENSE, inputs_for, lab_nodes, start_world

pytestmark = [pytest.mark.browser, pytest.mark.slow]
NODES = ["AMS1", "AMS2"]
WRONG = "Wrong-Passw0rd-canary"
SHOTS = ARTIFACTS / "e2e" / "run-inputs"
LABELS = {
    "ams_version": "Access Manager version to install",
    "gmsa": "Service account (gMSA)",
    "sql_connection_string": "SQL Server connection string",
    "license_key": "Enterprise license key",
}


@pytest.fixture
def lab(tmp_path):
    store, server = start_world(tmp_path, NODES)
    yield store, server
    server.stop()


@pytest.fixture
def page(browser, live):
    page, errors = open_page(browser, live)
    make_user("operator", "admin")
    sign_in(page, live)
    yield page
    page.context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def _typed_prerequisites(page, lab, password: str):
    """(deployment id, run panel): a deployment on the lab nodes, no credentials stored and no
    inputs saved; on its Prerequisites page every value and the license key typed, and the lab's
    WinRM user with `password` in the run panel, nothing pressed yet."""
    store, server = lab
    user = db.session.scalar(db.select(User).where(User.username == "operator"))
    data = {
        "name": "Run inputs lab",
        "domain_fqdn": "corp.example.test",
        "nodes": lab_nodes(server),
    }
    deployment_id = create_deployment(data, user).id
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(f"/deployments/{deployment_id}/steps/prerequisites")
    values = inputs_for(store)["prerequisites"]
    for name, label in LABELS.items():
        page.get_by_label(label, exact=True).fill(values[name])
    panel = page.locator("#run-panel")
    panel.get_by_label("WinRM user").fill(LAB_USER)
    panel.get_by_label("Password").fill(password)
    return deployment_id, panel


def _wait_status(page, expect, status: str) -> None:
    expect(page.locator(f".run-status[data-run-status='{status}']")).to_be_visible(timeout=60_000)


def _runs(deployment_id: int) -> list[StepRun]:
    db.session.remove()
    return list(
        db.session.scalars(
            db.select(StepRun).where(StepRun.deployment_id == deployment_id).order_by(StepRun.id)
        )
    )


def test_typed_license_key_reaches_the_run_without_saving(e2e, live, lab, page):
    from playwright.sync_api import expect

    store, _server = lab
    deployment_id, panel = _typed_prerequisites(page, lab, LAB_PASSWORD)
    button = panel.get_by_role("button", name="Run Prerequisites")
    expect(button).to_have_text("Run Prerequisites")
    button.click()  # no "Save inputs" first
    # Windows as shipped: the AD module is missing, so the checks pause; the license check ran.
    _wait_status(page, expect, "failed")
    outcome = page.locator(".outcome")
    expect(outcome).to_contain_text("A license key is stored, encrypted")
    expect(outcome).not_to_contain_text("No license key was entered")
    page.screenshot(path=str(SHOTS / "typed-license-run.png"), full_page=True)

    db.session.remove()
    deployment = db.session.get(Deployment, deployment_id)
    saved = deployment.step("prerequisites").inputs
    assert saved["gmsa"] == inputs_for(store)["prerequisites"]["gmsa"]
    assert "license_key" not in saved
    assert vault.load_secrets(deployment_id)[1]["license_key"] == LICENSE
    (run,) = _runs(deployment_id)
    assert run.inputs["ams_version"] == saved["ams_version"]
    assert LICENSE not in page.content() and LAB_PASSWORD not in page.content()
    # The fields show what was saved (the key only as "stored").
    expect(page.get_by_label(LABELS["gmsa"], exact=True)).to_have_value(saved["gmsa"])
    expect(page.get_by_label(LABELS["license_key"], exact=True)).to_have_attribute(
        "placeholder", re.compile("stored")
    )


def test_a_refused_password_is_asked_again_and_never_retried(e2e, live, lab, page):
    from playwright.sync_api import expect

    deployment_id, panel = _typed_prerequisites(page, lab, WRONG)
    panel.get_by_role("button", name="Run Prerequisites").click()
    _wait_status(page, expect, "failed")
    (first,) = _runs(deployment_id)
    refused = db.session.scalars(
        db.select(NodeAction).where(
            NodeAction.step_run_id == first.id, NodeAction.error_category == "auth_failed"
        )
    ).all()
    assert refused, "the nodes should have refused the wrong password"

    decide = page.locator(".decide")
    expect(decide.locator("[data-credentials-refused]")).to_contain_text(
        f"refused the credentials of {LAB_USER}"
    )
    expect(decide.locator("input[value=stored]")).to_have_count(0)  # no offer of them
    expect(decide.locator("input[name=decision][value=retry]")).to_be_checked()
    page.screenshot(path=str(SHOTS / "refused-asks-again.png"), full_page=True)

    # Continue without typing anything: asked for the credentials, nothing runs.
    page.get_by_role("button", name="Continue").click()
    expect(page.locator(".flash-error")).to_contain_text(
        "A node refused the stored credentials: enter the user name"
    )
    assert len(_runs(deployment_id)) == 1
    # The same refused password typed again: the server refuses it, the nodes see nothing.
    decide = page.locator(".decide")
    decide.get_by_label("WinRM user").fill(LAB_USER)
    decide.get_by_label("Password").fill(WRONG)
    page.get_by_role("button", name="Continue").click()
    expect(page.locator(".flash-error")).to_contain_text("a node just refused")
    page.screenshot(path=str(SHOTS / "refused-again.png"), full_page=True)
    assert len(_runs(deployment_id)) == 1
    # The right password: the retry runs (and pauses on Windows' missing AD module, as shipped).
    decide = page.locator(".decide")
    decide.get_by_label("WinRM user").fill(LAB_USER)
    decide.get_by_label("Password").fill(LAB_PASSWORD)
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(re.compile(r"/steps/prerequisites$"))
    _wait_status(page, expect, "failed")
    runs = _runs(deployment_id)
    assert len(runs) == 2
    assert runs[1].options.decision == "retry"
    again = db.session.scalars(
        db.select(NodeAction).where(
            NodeAction.step_run_id == runs[1].id, NodeAction.error_category == "auth_failed"
        )
    ).all()
    assert again == []
    expect(page.locator(".outcome")).to_contain_text("Active Directory PowerShell module")
    for event in db.session.scalars(db.select(Event).where(Event.deployment_id == deployment_id)):
        assert WRONG not in str(event.payload) and LAB_PASSWORD not in str(event.payload)
    assert WRONG not in page.content()
