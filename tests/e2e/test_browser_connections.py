"""Test connection in Chromium, through the real Celery worker: two lab nodes that accept
Kerberos tickets from a real MIT KDC. The right password shows who signed in and how; a wrong
one shows Kerberos' reason and what to do; neither password is ever in a page or an event."""

import re

import pytest

from app.deployments.service import create_deployment
from app.extensions import db
from app.models import Event, User
from tests.conftest import ARTIFACTS
from tests.e2e.conftest import open_page, sign_in
from tests.execution.harness import LAB_PASSWORD, LAB_USER, make_user
from tests.kdc import lab_realm
from tests.lab_world import lab_nodes, start_world

pytestmark = [pytest.mark.browser, pytest.mark.slow]
NODES = ["AMS1", "AMS2"]


def test_connection_test_by_kerberos_in_the_browser(e2e, live, browser, tmp_path):
    from playwright.sync_api import expect

    realm = lab_realm(tmp_path / "kdc", {LAB_USER: LAB_PASSWORD})
    _store, server = start_world(tmp_path, NODES, keytab=realm.keytab)
    make_user("operator", "admin")
    user = db.session.scalar(db.select(User).where(User.username == "operator"))
    nodes = lab_nodes(server, auth="kerberos")
    data = {"name": "Kerberos lab", "domain_fqdn": "corp.example.test", "nodes": nodes}
    deployment = create_deployment(data | {"kerberos_kdcs": realm.kdc}, user)
    page, _errors = open_page(browser, live)
    shots = ARTIFACTS / "e2e" / "connections"
    shots.mkdir(parents=True, exist_ok=True)
    try:
        sign_in(page, live)
        page.goto(f"/deployments/{deployment.id}/steps/prerequisites")
        page.get_by_role("link", name="Test connections").click()
        page.wait_for_url(re.compile(rf"/deployments/{deployment.id}/connections$"))

        page.get_by_label("WinRM user").fill(f"CORP\\{LAB_USER}")
        page.get_by_label("Password").fill(LAB_PASSWORD)
        page.locator("tr[data-node='AMS1']").get_by_role("button", name="Test connection").click()
        result = page.locator("tr[data-node='AMS1'] [data-result]")
        expect(result).to_contain_text("connected", timeout=30_000)
        expect(result).to_contain_text(f"Signed in as {LAB_USER}@CORP.EXAMPLE.TEST by Kerberos")
        page.screenshot(path=str(shots / "01-kerberos-connected.png"), full_page=True)

        page.get_by_label("Password").fill("Not-The-Password1")
        page.locator("tr[data-node='AMS2']").get_by_role("button", name="Test connection").click()
        failed = page.locator("tr[data-node='AMS2'] [data-result]")
        expect(failed).to_contain_text("failed", timeout=30_000)
        expect(failed).to_contain_text("wrong password")
        expect(failed).to_contain_text("do not retry with the same password")
        page.screenshot(path=str(shots / "02-wrong-password.png"), full_page=True)
        html = page.content()
        assert LAB_PASSWORD not in html and "Not-The-Password1" not in html
    finally:
        page.context.close()
        server.stop()
        realm.stop()
    assert server.auth_methods["AMS1"] == {"kerberos"}
    db.session.remove()
    events = db.session.scalars(db.select(Event).where(Event.deployment_id == deployment.id)).all()
    kinds = [e.kind for e in events]
    assert kinds.count("connection.tested") == 2 and kinds.count("connection.test_requested") == 2
    assert LAB_PASSWORD not in str([e.payload for e in events])
