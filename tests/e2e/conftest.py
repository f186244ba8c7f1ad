"""End-to-end fixtures: the worker's database, one real Celery worker for the session (its own
queue), a lab per module (reset between cases from saved states), the test-only lab
observation hook, and for the browser tests the app on a live port, a fresh page, and signing in.

Nothing here skips: a missing PostgreSQL/Redis (when DATABASE_URL/REDIS_URL are set), Chromium or
Playwright fails the test.
"""

import contextlib
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests import lab_world
from tests.execution.harness import (  # noqa: F401 - fixtures
    USER_PASSWORD,
    LiveServer,
    QueueEnqueue,
    Worker,
    exec_app,
    exec_ctx,
    exec_db_url,
)
from tests.lab_world import observe_lab


@pytest.fixture(scope="session")
def e2e_worker(exec_app, exec_db_url, tmp_path_factory):  # noqa: F811
    """A real `celery worker` on a queue of its own; the app sends every task there."""
    queue = f"amsw-e2e-{uuid.uuid4().hex[:8]}"
    log = tmp_path_factory.mktemp("e2e-worker") / "worker.log"
    handle = Worker(exec_db_url, log, queue=queue)
    exec_app.extensions["amsw_enqueue"] = QueueEnqueue(exec_app, queue)
    lab_world.WORKER = handle
    yield handle
    lab_world.WORKER = None
    exec_app.extensions.pop("amsw_enqueue", None)
    handle.stop(graceful=False)


@pytest.fixture
def lab_calls():
    """What every lab handler received during the test (wraps the handler registry)."""
    with observe_lab() as seen:
        yield seen


@pytest.fixture
def e2e(exec_ctx, e2e_worker):  # noqa: F811 - fixtures imported from the harness
    """An app context on the worker's database with the real worker running, the app hearing
    that worker's events: with Redis, events go out on channels named after the worker's queue
    (app.events.publish.channel_prefix), so the app listens under the same name while the test
    runs. Before this, the pages' live status reached the browser only with each stream's
    keep-alive, 15 s after the event (each run of the browser happy path took 17 s, not 2 s)."""
    # A stream's keep-alive re-reads the log: kept longer than the pages' 60 s waits for a run's
    # status, so a live update that never arrives fails the test instead of coming late.
    keepalive = exec_ctx.config.get("SSE_KEEPALIVE_SECONDS")
    exec_ctx.config["SSE_KEEPALIVE_SECONDS"] = 120
    try:
        with events_of_queue(exec_ctx, e2e_worker.queue):
            yield exec_ctx
    finally:
        exec_ctx.config["SSE_KEEPALIVE_SECONDS"] = keepalive


@contextlib.contextmanager
def events_of_queue(app, queue: str):
    """The app's CELERY_QUEUE (hence its event channels) set to `queue`, and its events hub
    started again so its Redis listener subscribes under that name; restored after."""
    saved = app.config["CELERY_QUEUE"]

    def listen_as(name: str) -> None:
        app.config["CELERY_QUEUE"] = name
        if hub := app.extensions.pop("amsw_events_hub", None):
            hub.stop()  # its open streams hear no more news; the next stream starts a new hub

    listen_as(queue)
    try:
        yield
    finally:
        listen_as(saved)


@pytest.fixture
def live(e2e):
    """The app served over real HTTP on the worker's database: the browser's base URL."""
    server = LiveServer(e2e)
    yield server.url
    server.stop()


def open_page(browser, live: str, **options):
    """(page, JavaScript errors seen on it): a page in a fresh browser context (no cookies) at a
    desktop size, `options` for the context; the caller closes page.context."""
    context = browser.new_context(base_url=live, viewport={"width": 1360, "height": 900}, **options)
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return page, errors


def sign_in(page, live: str, username: str = "operator", password: str = USER_PASSWORD) -> None:
    """Sign in on the login page (a user made by make_user) and land on the dashboard."""
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live}/")


def summary_says_highly_available(page, nodes: list[str]):
    """On a Summary page: the deliverable is shown, complete and highly available on `nodes`.
    Returns fact(name), the locator of the deliverable's fact `name`."""
    from playwright.sync_api import expect

    expect(page.locator("[data-summary]")).to_be_visible()
    expect(page.locator("[data-outcome]")).to_have_attribute("data-outcome", "complete")
    expect(page.locator("[data-ha]")).to_have_attribute("data-ha", "yes")
    expect(page.locator("[data-ha]")).to_contain_text(", ".join(nodes))
    return lambda name: page.locator(f'[data-fact="{name}"]')
