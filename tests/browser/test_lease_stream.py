"""The driver's lease page keeps listening for a take-over when the server turns its stream away:
a server at its cap of live streams (SSE_MAX_STREAMS) answers 503, which EventSource never
retries by itself, so static/js/lease.js reopens the stream with a backoff."""

import re
import time

import pytest
from playwright.sync_api import expect

from tests.conftest import csrf_token
from tests.handover.helpers import signed_in as client_signed_in

pytestmark = pytest.mark.browser

STEP = "prerequisites"
BUSY = "This server process serves as many live streams as it may; retry shortly.\n"


class BusyServer:
    """Answers every event stream request with the server's 503 while `busy`; records when."""

    def __init__(self) -> None:
        self.busy = True
        self.refused: list[float] = []

    def __call__(self, route) -> None:
        if not self.busy:
            route.continue_()
            return
        self.refused.append(time.monotonic())
        route.fulfill(
            status=503, headers={"Retry-After": "5"}, content_type="text/plain", body=BUSY
        )


def _take_over(app, deployment_id: int) -> None:
    """Another user takes the deployment over through the real view."""
    helper = client_signed_in(app, "hank", "helpdesk")
    token = csrf_token(helper, f"/deployments/{deployment_id}/steps/{STEP}")
    response = helper.post(
        f"/deployments/{deployment_id}/take-over",
        data={"csrf_token": token, "reason": "Night shift finishes it"},
    )
    assert response.status_code == 302


def test_the_lease_stream_is_reopened_after_the_server_refuses_it(app, signed_in, deployment_id):
    page = signed_in
    server = BusyServer()
    page.route(re.compile(r"/deployments/\d+/events\?"), server)
    page.goto(f"/deployments/{deployment_id}/steps/{STEP}")
    banner = page.locator("[data-lease]")
    expect(banner).to_contain_text("You are driving this deployment")
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:  # the page's streams are refused for 4 s
        page.wait_for_timeout(200)
    server.busy = False
    # Both of the page's streams (the live log's and the lease's) were refused at least once, and
    # backing off they asked again a few times, not in a tight loop.
    assert 2 <= len(server.refused) <= 8, server.refused
    _take_over(app, deployment_id)
    # Well before the lease's 30 s ping: only the reopened stream can have said so.
    expect(banner).to_contain_text("hank took over this deployment", timeout=15_000)
    expect(banner).to_contain_text("Night shift finishes it")
    expect(page.get_by_role("button", name="Save inputs")).to_be_disabled()
