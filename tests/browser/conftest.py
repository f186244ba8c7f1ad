"""Browser fixtures: the real app on a free loopback port (werkzeug, threaded) driven by Debian's
Chromium through Playwright. Reuses tests/conftest.py's database fixtures (fresh, migrated)."""

import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from app.auth.cli import create_user
from app.deployments.service import create_deployment
from app.extensions import db
from app.models import User
from tests.conftest import ARTIFACTS

SCREENS = ARTIFACTS / "screens"
USERNAME = "operator1"
PASSWORD = "correct horse battery staple"


class StreamCutter:
    """WSGI wrapper that can end every open SSE response, as a proxy or a restarted server would.

    After cut(), the next chunk a stream tries to send is dropped and the response ends, so the
    browser has to reconnect (with Last-Event-ID) to get it. Records the Last-Event-ID headers seen.
    """

    def __init__(self, wsgi_app) -> None:
        self.wsgi_app = wsgi_app
        self.generation = 0
        self.resumed_from: list[str] = []

    def cut(self) -> None:
        self.generation += 1

    def __call__(self, environ, start_response):
        body = self.wsgi_app(environ, start_response)
        if not environ.get("PATH_INFO", "").endswith("/events"):
            return body
        if environ.get("HTTP_LAST_EVENT_ID"):
            self.resumed_from.append(environ["HTTP_LAST_EVENT_ID"])
        return self._guard(body, self.generation)

    def _guard(self, body, generation: int):
        try:
            for chunk in body:
                if self.generation != generation:
                    return
                yield chunk
        finally:
            if hasattr(body, "close"):
                body.close()


@pytest.fixture(scope="session")
def cutter(app):
    return StreamCutter(app)


@pytest.fixture(scope="session")
def live_server(app, cutter):
    """Serve the app on 127.0.0.1:<free port> in a background thread for the whole session."""
    server = make_server("127.0.0.1", 0, cutter, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


@pytest.fixture(autouse=True)
def _fresh_events_hub(app):
    """Tables are emptied between tests and SQLite hands out the same deployment ids again: the
    live server's events hub must forget the event tails it cached for the previous test."""
    yield
    if hub := app.extensions.get("amsw_events_hub"):
        hub.forget()


@pytest.fixture
def page(browser, live_server):
    """A fresh browser context (no cookies) per test, at a desktop size."""
    context = browser.new_context(base_url=live_server, viewport={"width": 1360, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def user(app):
    """An operator who may drive deployments; returns the username."""
    with app.app_context():
        create_user(USERNAME, PASSWORD, "admin")
    return USERNAME


@pytest.fixture
def signed_in(page, user):
    """A page signed in through the real login form."""
    sign_in(page, user)
    return page


@pytest.fixture
def deployment_id(app, user):
    """A deployment with two nodes, created through the service the view uses."""
    data = {
        "name": "Contoso AMS",
        "domain_fqdn": "corp.example.com",
        "nodes": [
            {
                "name": f"AMS-NODE{i}",
                "host": f"ams-node{i}.corp.example.com",
                "port": 5985,
                "transport": "http",
                "auth": "negotiate",
                "cert_validation": True,
            }
            for i in (1, 2)
        ],
    }
    with app.app_context():
        owner = db.session.scalar(db.select(User).where(User.username == user))
        deployment = create_deployment(data, owner)
        return deployment.id


@pytest.fixture
def shot():
    """Save a screenshot under tests/artifacts/screens/: shot(page, name, full_page=True)."""
    return screenshot


def sign_in(page, username: str, password: str = PASSWORD) -> None:
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/")


def screenshot(page, name: str, full_page: bool = True) -> Path:
    """Save a PNG under tests/artifacts/screens/ (gitignored) and return its path."""
    SCREENS.mkdir(parents=True, exist_ok=True)
    path = SCREENS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path
