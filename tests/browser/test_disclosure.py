"""Issue 21, item 7: fields appear only for the chosen option (static/js/disclose.js), under the
app's CSP; without JavaScript every field stays (checked in tests/checks/test_input_rules.py)."""

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_quorum_fields_follow_the_witness_kind(signed_in, deployment_id, shot):
    page = signed_in
    page.goto(f"/deployments/{deployment_id}/steps/quorum")
    share = page.locator("#share_path")
    account = page.locator("#cloud_account")
    disk = page.locator("#disk_name")
    expect(share).to_be_visible()
    expect(account).to_be_hidden()
    expect(disk).to_be_hidden()
    page.get_by_label("Cloud witness (Azure storage account)").check()
    expect(account).to_be_visible()
    expect(page.locator("#cloud_access_key")).to_be_visible()
    expect(share).to_be_hidden()
    page.get_by_label("Disk witness").check()
    expect(disk).to_be_visible()
    expect(account).to_be_hidden()
    shot(page, "quorum-disk-witness")


def test_install_file_only_for_the_unattended_install(signed_in, deployment_id):
    page = signed_in
    page.goto(f"/deployments/{deployment_id}/steps/install_ams")
    installer = page.locator("#installer_name")
    expect(installer).to_be_hidden()
    page.get_by_label("The wizard copies and runs the installer (experimental)").check()
    expect(installer).to_be_visible()


def test_validate_certificate_only_for_https(signed_in):
    page = signed_in
    page.goto("/deployments/new")
    box = page.locator("#nodes-0-cert_validation")
    expect(box).to_be_hidden()
    page.locator("#nodes-0-transport").select_option("https")
    expect(box).to_be_visible()
    expect(page.locator("#nodes-1-cert_validation")).to_be_hidden()  # per node row
