"""The load-balancer guide in Chromium, on the strict lab's farm world with the real worker: the
operator picks the topology on the new-deployment form, fills each step's inputs, runs each step
(Run uses what is on the screen), plays the operator for the manual install and at the balancer,
answers each pause in the page, and reaches the Summary. One screenshot per screen in
tests/artifacts/e2e/farm/ (AMSW_TEST_ARTIFACTS)."""

import re

import pytest

from tests.conftest import ARTIFACTS
from tests.e2e.conftest import open_page, sign_in, summary_says_highly_available
from tests.e2e.screens import Screens, fill, run_and_wait, wait_status
from tests.execution.harness import USER_PASSWORD, make_user
from tests.guides.load_balancer.farm_world import V3, drain_all_but, farm_inputs, install_nodes
from tests.lab_world import LICENSE, start_world

pytestmark = [pytest.mark.browser, pytest.mark.slow]
NODES = ["AMS1", "AMS2"]


def _continue(page, expect, status: str, fix: str | None = None) -> None:
    """Answer the pause with Retry (and the offered fix whose label matches `fix`)."""
    decide = page.locator(".decide")
    if fix:
        decide.get_by_label(re.compile(fix)).check()
    decide.locator("input[name=decision][value=retry]").check()
    page.get_by_role("button", name="Continue").click()
    wait_status(page, expect, status)


def test_the_farm_guide_in_the_browser(e2e, live, browser, tmp_path):
    from playwright.sync_api import expect

    make_user("operator", "admin")
    store, server = start_world(tmp_path, NODES, scenario="farm")
    values = farm_inputs(store, V3)
    page, errors = open_page(browser, live)
    shot = Screens(page, ARTIFACTS / "e2e" / "farm")
    try:
        sign_in(page, live)

        page.get_by_role("link", name="New deployment").first.click()
        topology = page.locator("fieldset.topology")
        expect(topology).to_contain_text("Recommended for Access Manager 3.x")
        topology.get_by_label(re.compile("behind a load balancer")).check()
        page.get_by_label("Deployment name").fill("Farm in the browser")
        page.get_by_label("Active Directory domain").fill("corp.example.test")
        for i, node in enumerate(NODES):
            page.locator(f"#nodes-{i}-name").fill(node)
            page.locator(f"#nodes-{i}-host").fill("127.0.0.1")
            page.locator(f"#nodes-{i}-port").fill(str(server.ports[node]))
            page.locator(f"#nodes-{i}-auth").select_option("ntlm")
        shot("new-deployment")
        page.get_by_role("button", name="Create deployment").click()
        page.wait_for_url(re.compile(r"/deployments/\d+/steps/prerequisites$"))
        sidebar = page.locator("nav, aside").first
        for title in ("SQL", "first node", "Farm test"):
            expect(page.locator("body")).to_contain_text(re.compile(title, re.IGNORECASE))
        expect(sidebar).not_to_contain_text("Quorum")

        # Prerequisites: the inputs typed and Run pressed, without Save; the AD module fix.
        fill(
            page,
            {
                "Access Manager version to install": V3,
                "Service account (gMSA)": values["prerequisites"]["gmsa"],
                "SQL Server connection string": values["prerequisites"]["sql_connection_string"],
                "Enterprise license key": LICENSE,
            },
        )
        run_and_wait(page, expect, "failed")
        expect(page.locator("#run-panel")).to_contain_text("Active Directory PowerShell module")
        _continue(page, expect, "succeeded", "Apply first: Install the Active Directory")
        shot("prerequisites-done")
        page.locator(".next-step a.primary").click()

        page.wait_for_url(re.compile(r"/steps/sql_database$"))
        run_and_wait(page, expect)
        shot("sql-done")
        page.locator(".next-step a.primary").click()

        page.wait_for_url(re.compile(r"/steps/first_node$"))
        fill(
            page,
            {"TLS certificate thumbprint": values["first_node"]["certificate_thumbprint"]},
        )
        run_and_wait(page, expect, "failed")  # not installed yet: the manual checklist
        shot("first-node-checklist")
        install_nodes(store, V3, ["AMS1"])
        _continue(page, expect, "failed")  # installed: the license is to be confirmed
        page.get_by_label(re.compile("I entered the Enterprise license key")).check()
        _continue(page, expect, "succeeded")
        page.locator(".next-step a.primary").click()

        page.wait_for_url(re.compile(r"/steps/other_nodes$"))
        run_and_wait(page, expect, "failed")
        install_nodes(store, V3, ["AMS2"])
        _continue(page, expect, "succeeded")
        shot("other-nodes-done")
        page.locator(".next-step a.primary").click()

        page.wait_for_url(re.compile(r"/steps/host_config$"))
        fill(page, {"External host name": values["host_config"]["external_host_name"]})
        run_and_wait(page, expect)
        page.locator(".next-step a.primary").click()

        page.wait_for_url(re.compile(r"/steps/ip_detection$"))
        fill(
            page,
            {
                "Known proxy addresses": values["ip_detection"]["known_proxies"],
                "I entered these settings on the configuration tool's IP address detection page": True,
            },
        )
        run_and_wait(page, expect)
        page.locator(".next-step a.primary").click()

        # The farm test: all nodes, then each node alone (the others drained), then all back.
        page.wait_for_url(re.compile(r"/steps/farm_test$"))
        fill(page, {"Load balancer address": values["farm_test"]["balancer_address"]})
        run_and_wait(page, expect, "passed")  # every node in service: the first round
        for node in NODES:
            expect(page.locator(".decide")).to_contain_text(f"only {node} is in service")
            drain_all_but(store, node)
            # The next round is the way on: chosen already, as "Next:", not as a repair.
            way_on = page.locator(".fixes label", has_text=f"only {node} is in service")
            expect(way_on).to_contain_text("Next: At the balancer")
            expect(way_on.locator("input")).to_be_checked()
            _continue(page, expect, "passed")
            shot(f"farm-round-{node}")
        drain_all_but(store, None)
        last = page.locator(".fixes label", has_text="Every node is back in service")
        expect(last).to_contain_text("Next: Every node")
        expect(last.locator("input")).to_be_checked()
        _continue(page, expect, "succeeded")
        shot("farm-test-done")
        page.locator(".next-step a.primary").click()
        page.wait_for_url(re.compile(r"/steps/summary$"))
        # The Summary: what was built, from what the steps recorded, and the verdict.
        fact = summary_says_highly_available(page, NODES)
        thumbprint = values["first_node"]["certificate_thumbprint"]
        database = "AccessManager on sql1.corp.example.test"
        expect(fact("balancer")).to_have_text(values["farm_test"]["balancer_address"])
        host_name = values["host_config"]["external_host_name"]
        expect(fact("external-host-name")).to_contain_text(host_name)
        expect(fact("ams-version")).to_have_text(V3)
        expect(fact("account")).to_have_text(values["prerequisites"]["gmsa"])
        expect(fact("database")).to_contain_text(database)
        expect(fact("certificate")).to_contain_text(thumbprint)
        expect(fact("license")).to_contain_text("confirmed by operator")
        expect(fact("ip-detection")).to_contain_text(values["ip_detection"]["known_proxies"])
        for node in NODES:
            row = page.locator(f'[data-summary-nodes] tr[data-node="{node}"]')
            for text in ("Running", V3, values["prerequisites"]["gmsa"], database, thumbprint):
                expect(row).to_contain_text(text)
            expect(row.locator("time")).to_have_count(1)  # when the balancer reached it
            health = page.locator(f'[data-summary-health] tr[data-health-node="{node}"]')
            expect(health).to_have_count(2)  # the web app's page and the agent API's
            expect(health.locator(".badge-pass")).to_have_count(2)
            expect(health.first.locator("time")).to_have_count(1)
            alone = page.locator(f'[data-summary-rounds] tr[data-round="{node}"]')
            expect(alone).to_contain_text(f"only {node}")
            expect(alone).to_contain_text("4 of 4 answered 200")
            expect(alone.locator("time")).to_have_count(1)
        expect(page.locator('[data-summary-rounds] tr[data-round="all"]')).to_have_count(2)
        for key in ("prerequisites", "sql_database", "first_node", "other_nodes", "host_config"):
            row = page.locator(f'[data-summary-steps] tr[data-step-row="{key}"]')
            expect(row).to_contain_text("operator")
            expect(row.locator("time")).to_have_count(2)
        expect(page.locator("[data-summary-exceptions]")).to_contain_text(
            "Nothing was skipped and no node was excluded."
        )
        for link in ("report", "json", "runbook"):
            expect(page.locator(f'[data-link="{link}"]')).to_be_visible()
        expect(page.locator("[data-summary]")).not_to_contain_text(
            "Integrated Security"
        )  # server and database only
        shot("summary")
        html = page.content()
        # The printable report says the same; the JSON export has the facts and no secret.
        page.locator('[data-link="report"]').click()
        page.wait_for_url(re.compile(r"/report$"))
        expect(page.locator("[data-ha]")).to_have_attribute("data-ha", "yes")
        expect(page.locator('[data-fact="certificate"]')).to_contain_text(thumbprint)
        expect(page.locator('[data-summary-rounds] tr[data-round="AMS2"]')).to_be_visible()
        shot("report")
        top = {"x": 0, "y": 0, "width": 1360, "height": 1600}
        page.screenshot(path=str(shot.folder / "11-report-top.png"), full_page=True, clip=top)
        html += page.content()
        import json

        from tests.execution.harness import LAB_PASSWORD

        exported = page.request.get(page.url.replace("/report", "/export.json"))
        assert exported.ok
        body = exported.text()
        facts = json.loads(body)["summary"]
        assert facts["ha"]["status"] == "yes" and facts["reached"] == NODES
        assert facts["certificate"]["thumbprint"] == thumbprint
        assert facts["database"]["text"] == database
        for secret in (LICENSE, LAB_PASSWORD, USER_PASSWORD):
            assert secret not in body and secret not in html
    finally:
        page.context.close()
        server.stop()
    assert not errors, f"JavaScript errors on the page: {errors}"
    state = store.read()
    assert {n["ams_host_config"]["host_name"] for n in state["nodes"].values()} == {
        state["balancer"]["fqdn"]
    }
