"""The whole happy path in Chromium: sign in, create the deployment, fill every step's inputs, run
each step with the lab's WinRM credentials, watch the live status reach done, go on. The manual
install pauses with its checklist; the operator's work is simulated in the lab and the pause is
answered with Retry in the page (the pause panel's Continue). Two routes for the second hop: two nodes over NTLM (scheduled
tasks), three over a real CredSSP handshake. One screenshot per screen in
tests/artifacts/e2e/<route>/ (AMSW_TEST_ARTIFACTS).

Needs Chromium at /usr/bin/chromium and Playwright: missing either fails the test.
"""

import re

import pytest

from app.lab import scenarios
from tests.conftest import ARTIFACTS
from tests.e2e.conftest import open_page
from tests.e2e.screens import Screens, fill, run_and_wait, wait_status
from tests.execution.harness import LAB_USER, USER_PASSWORD, make_user
from tests.lab_world import inputs_for, install_by_hand, start_world

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SHOTS = ARTIFACTS / "e2e"
NAME = "Contoso <b>AMS</b> & \"lab\" 'one'"  # shown literally, never as markup
ROUTES = {"ntlm": ["AMS1", "AMS2"], "credssp": ["AMS1", "AMS2", "AMS3"]}


@pytest.mark.parametrize("auth", list(ROUTES))
def test_whole_install_in_the_browser(auth, e2e, live, browser, tmp_path):
    from playwright.sync_api import expect

    nodes = ROUTES[auth]
    make_user("operator", "admin")
    store, server = start_world(tmp_path, nodes)
    if auth == "credssp":  # the operator enabled CredSSP on every node's WinRM service
        with store.transaction() as state:
            for node in nodes:
                scenarios.apply_fault(state, f"credssp:{node}")
    values = inputs_for(store)
    page, errors = open_page(browser, live)
    shot = Screens(page, SHOTS / auth)
    try:
        page.goto("/login")
        shot("login")
        page.get_by_label("Username").fill("operator")
        page.get_by_label("Password").fill(USER_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{live}/")
        shot("dashboard")

        page.get_by_role("link", name="New deployment").first.click()
        page.get_by_label("Deployment name").fill(NAME)
        page.get_by_label("Active Directory domain").fill("corp.example.test")
        for _ in nodes[2:]:  # the form starts with two nodes
            page.get_by_role("button", name="Add a node").click()
            expect(page.locator(f"#nodes-{len(nodes) - 1}-name")).to_be_visible()
        expect(page.get_by_label("Deployment name")).to_have_value(NAME)
        for i, node in enumerate(nodes):
            page.locator(f"#nodes-{i}-name").fill(node)
            page.locator(f"#nodes-{i}-host").fill("127.0.0.1")
            page.locator(f"#nodes-{i}-port").fill(str(server.ports[node]))
            page.locator(f"#nodes-{i}-auth").select_option(auth)
        shot("new-deployment")
        page.get_by_role("button", name="Create deployment").click()
        page.wait_for_url(re.compile(r"/deployments/\d+/steps/prerequisites$"))
        expect(page.locator("body")).to_contain_text(NAME)  # the name is text, not markup
        assert page.locator("b", has_text="AMS").count() == 0

        forms = {
            "prerequisites": {
                "Access Manager version to install": values["prerequisites"]["ams_version"],
                "Service account (gMSA)": values["prerequisites"]["gmsa"],
                "SQL Server connection string": values["prerequisites"]["sql_connection_string"],
                "Enterprise license key": values["prerequisites"]["license_key"],
            },
            "base_cluster": {
                "Cluster name": values["base_cluster"]["cluster_name"],
                "Cluster static IP address": values["base_cluster"]["cluster_address"],
            },
            "quorum": {"File share path": values["quorum"]["share_path"]},
            "install_ams": {
                "TLS certificate thumbprint": values["install_ams"]["certificate_thumbprint"]
            },
            "cluster_role": {
                "Client access point name": values["cluster_role"]["access_point_name"],
                "Client access point IP address": values["cluster_role"]["access_point_address"],
            },
            "failover_test": {"Seconds to wait for the role on each node": 60},
        }
        for number, (step, form) in enumerate(forms.items(), 1):
            page.wait_for_url(re.compile(rf"/steps/{step}$"))
            fill(page, form)
            page.get_by_role("button", name="Save inputs").click()
            expect(page.locator(".flash-success")).to_contain_text("inputs saved")
            shot(f"step{number}-{step}-inputs")
            if step == "install_ams":
                run_and_wait(page, expect, "failed")  # paused: the manual checklist
                expect(page.locator("#run-panel")).to_contain_text(
                    "Access Manager is not installed"
                )
                shot(f"step{number}-{step}-checklist")
                install_by_hand(store)  # the operator runs the installer and the config tool
                page.locator(".decide input[name=decision][value=retry]").check()
                page.get_by_role("button", name="Continue").click()
                # From 2.1 the license lives in the database: the page asks for a confirmation.
                wait_status(page, expect, "failed")
                expect(page.locator("#run-panel")).to_contain_text("Confirm the license")
                shot(f"step{number}-{step}-confirm-license")
                # Retry runs with the inputs as they are on the screen: no Save first.
                page.get_by_label(re.compile("I entered the license key")).check()
                page.locator(".decide input[name=decision][value=retry]").check()
                page.get_by_role("button", name="Continue").click()
                wait_status(page, expect, "succeeded")
            elif step == "prerequisites":
                # Windows as shipped: no ActiveDirectory module on the members. The step offers
                # to install it on the first node; the operator accepts and runs again.
                run_and_wait(page, expect, "failed")
                expect(page.locator("#run-panel")).to_contain_text(
                    "Active Directory PowerShell module"
                )
                shot(f"step{number}-{step}-ad-module")
                # The pause offers the fix with Retry, and the credentials stored by the run.
                decide = page.locator(".decide")
                expect(decide).to_contain_text(f"Use the stored credentials of {LAB_USER}")
                decide.get_by_label(re.compile("Apply first: Install the Active Directory")).check()
                decide.locator("input[name=decision][value=retry]").check()
                page.get_by_role("button", name="Continue").click()
                wait_status(page, expect, "succeeded")
            else:
                run_and_wait(page, expect)
            if step == "base_cluster" and auth == "credssp":
                # Created straight from the CredSSP session; the page says to turn CredSSP off.
                expect(page.locator("#run-panel")).to_contain_text("Disable-WSManCredSSP")
            expect(page.locator("h1 .badge, h1 [class*=status]").first).to_be_visible()
            shot(f"step{number}-{step}-done")
            page.locator(".next-step a.primary").click()  # right under the outcome

        page.wait_for_url(re.compile(r"/steps/summary$"))
        expect(page.locator("body")).to_contain_text("Summary")
        shot("step7-summary")
    finally:
        page.context.close()
        server.stop()
    assert not errors, f"JavaScript errors on the page: {errors}"
    state = store.read()
    assert state["cluster"]["groups"]["AMSWEB"]["state"] == "Online"
    assert sorted(state["cluster"]["nodes"]) == nodes
    assert set(server.last_auth.values()) == {auth}, server.last_auth
    assert len(list((SHOTS / auth).glob("*.png"))) == shot.count >= 18
