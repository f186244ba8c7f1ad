"""The Summary of a completed 3-node lab deployment, in Chromium (issue 21, point 3).

The deployment runs every step against the lab with the real Celery worker, through the step
service as the screens drive it (tests/e2e/cluster_run.py's happy path: manual install with
its pause and Retry, the failover test on the three nodes). Then an operator signs in and reads the
Summary: every fact of point 3 is on the page, "Edit nodes" is not offered, the report agrees, and
the runbook downloads (audited). A full-page screenshot is kept in <artifacts>/e2e/summary/.

Needs Chromium at /usr/bin/chromium and Playwright: missing either fails the test.
"""

import re

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditRecord, Deployment
from tests.conftest import ARTIFACTS
from tests.e2e.cluster_run import happy_path
from tests.e2e.conftest import open_page, sign_in, summary_says_highly_available
from tests.execution.harness import make_user
from tests.lab_world import start_world

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SHOTS = ARTIFACTS / "e2e" / "summary"
NODES = ["AMS1", "AMS2", "AMS3"]


def test_the_summary_of_a_completed_three_node_deployment(e2e, live, browser, tmp_path, lab_calls):
    from playwright.sync_api import expect

    store, server = start_world(tmp_path, NODES)
    try:
        deployment_id, finals = happy_path(store, server, lab_calls)
    finally:
        server.stop()
    hints = store.read()["suggested_inputs"]
    make_user("operator", "operator")
    db.session.commit()

    SHOTS.mkdir(parents=True, exist_ok=True)
    page, errors = open_page(browser, live, accept_downloads=True)
    try:
        sign_in(page, live)
        page.goto(f"/deployments/{deployment_id}/steps/summary")
        # The outcome, said plainly.
        fact = summary_says_highly_available(page, NODES)
        # The cluster, its address, the witness, the role, its address and owner, the version.
        expect(fact("cluster")).to_contain_text("AMSCLU")
        expect(fact("cluster")).to_contain_text("amsclu.corp.example.test")
        expect(fact("cluster-address")).to_have_text(hints["cluster_address"])
        expect(fact("quorum")).to_contain_text("File Share")
        expect(fact("quorum")).to_contain_text(hints["share_path"])
        expect(fact("role")).to_contain_text("AMSWEB")
        expect(fact("role-address")).to_have_text(hints["access_point_address"])
        owner = store.read()["cluster"]["groups"]["AMSWEB"]["owner"]
        expect(fact("owner")).to_contain_text(owner)  # where the lab says the role is now
        expect(fact("owner")).to_contain_text("after the failover test")
        expect(fact("ams-version")).to_have_text(hints["ams_version"])
        # Each node: its state, version, service account and database.
        for node in NODES:
            row = page.locator(f'[data-summary-nodes] tr[data-node="{node}"]')
            expect(row.locator(".badge-pass").first).to_have_text("Up")
            expect(row).to_contain_text(hints["ams_version"])
            expect(row).to_contain_text(hints["gmsa"])
            expect(row).to_contain_text("AccessManager on sql1.corp.example.test")
            expect(row.locator(".badge-pass")).to_have_count(2)  # Up, and the failover test
            expect(row).to_contain_text("start type Manual")  # clustered: the cluster starts it
            # The failover result of each node, with its times.
            moved = page.locator(f'[data-summary-failover] tr[data-failover-node="{node}"]')
            expect(moved.locator(".badge-pass")).to_have_count(1)
            expect(moved).to_contain_text("running")
            expect(moved).to_contain_text("200")
            expect(moved).to_contain_text(re.compile(r"\d+(\.\d)? s"))
            expect(moved.locator("time")).to_have_count(1)
        # Who ran each step, and when; the Summary itself reads done, here and in the sidebar.
        for key in ("prerequisites", "base_cluster", "quorum", "install_ams", "cluster_role"):
            row = page.locator(f'[data-summary-steps] tr[data-step-row="{key}"]')
            expect(row).to_contain_text("e2e-operator")
            expect(row.locator("time")).to_have_count(2)
        failover_row = page.locator('[data-summary-steps] tr[data-step-row="failover_test"]')
        expect(failover_row).to_contain_text("e2e-operator")
        expect(page.locator('tr[data-step-row="summary"] [data-step-status]')).to_have_attribute(
            "data-step-status", "done"
        )
        expect(page.locator('[data-step-state="summary"]')).to_have_text("done")
        # Nothing was skipped or excluded, and the page says so.
        expect(page.locator("[data-summary-exceptions]")).to_contain_text(
            "Nothing was skipped and no node was excluded."
        )
        # A finished deployment's nodes are not edited; the record can be kept.
        expect(page.locator("[data-edit-nodes]")).to_have_count(0)
        for link in ("report", "json", "runbook"):
            expect(page.locator(f'[data-link="{link}"]')).to_be_visible()
        page.screenshot(path=str(SHOTS / "summary.png"), full_page=True)

        with page.expect_download() as download:
            page.locator('[data-link="runbook"]').click()
        assert download.value.suggested_filename == f"amsw-deployment-{deployment_id}.ps1"

        page.locator('[data-link="report"]').click()
        page.wait_for_url(re.compile(rf"/deployments/{deployment_id}/report$"))
        expect(page.locator("[data-ha]")).to_have_attribute("data-ha", "yes")
        expect(page.locator('[data-fact="owner"]')).to_contain_text(owner)
        expect(page.locator('tr[data-step-row="summary"] [data-step-status]')).to_have_attribute(
            "data-step-status", "done"
        )
        page.screenshot(path=str(SHOTS / "report.png"), full_page=True)
        top = {"x": 0, "y": 0, "width": 1360, "height": 1500}
        page.screenshot(path=str(SHOTS / "report-top.png"), full_page=True, clip=top)
    finally:
        page.context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
    db.session.expire_all()
    assert db.session.get(Deployment, deployment_id).step("summary").status == "done"
    audited = db.session.scalars(
        select(AuditRecord.actor_name).where(AuditRecord.action == "export.runbook")
    ).all()
    assert audited == ["operator"]
    assert finals["failover_test"].status == "succeeded"
