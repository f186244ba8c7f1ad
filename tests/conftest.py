"""Shared fixtures: one database per test session (SQLite by default, PostgreSQL when DATABASE_URL
is set, as in CI), migrated with Alembic, emptied between tests."""

import os
import re
import time
import uuid
from pathlib import Path

import pytest
from flask_migrate import upgrade
from playwright.sync_api import sync_playwright
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
# Screenshots and other files worth a look after a run (gitignored). .ci/run gives each of its two
# suites, which run at the same time, a folder of its own.
ARTIFACTS = Path(os.environ.get("AMSW_TEST_ARTIFACTS") or ROOT / "tests" / "artifacts")
# The lab's domain (corp.example.test) is in no DNS: KDCs come only from a deployment's list.
os.environ.setdefault("AMSW_KERBEROS_DNS", "0")
os.environ.setdefault(
    "KRB5_CONFIG", str(Path(__file__).resolve().parents[1] / "tests" / "krb5-neutral.conf")
)
os.environ.setdefault("AMSW_INSTANCE_DIR", str(ROOT / "instance" / f"test-{os.getpid()}"))
# This session's own Celery queue (config.py reads it once), so two suites can share one Redis.
os.environ["AMSW_CELERY_QUEUE"] = f"amsw-test-{uuid.uuid4().hex[:8]}"

from app import create_app  # noqa: E402
from app.auth.cli import create_user  # noqa: E402
from app.extensions import db  # noqa: E402
from config import TestConfig  # noqa: E402
from tests import ci_rules, service_free  # noqa: E402

PASSWORD = "correct horse battery staple"


def postgres_database(base_url: str, prefix: str = "amsw_test"):
    """Create a throwaway database next to the one DATABASE_URL names; yields its URL."""
    url = make_url(base_url)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def pytest_collection_modifyitems(config, items):
    """A `postgres` test is skipped on SQLite (reported under its own name); with
    AMSW_SERVICE_FREE=skip (CI's services suite) the service-free tests are left out."""
    verdict, reason = ci_rules.postgres_verdict(os.environ)
    for item in items:
        if verdict == ci_rules.SKIP and item.get_closest_marker("postgres"):
            item.add_marker(pytest.mark.skip(reason=reason))
    if service_free.skipped_here():
        free = {item.nodeid for item in items if _service_free(item)}
        config.hook.pytest_deselected(items=[item for item in items if item.nodeid in free])
        items[:] = [item for item in items if item.nodeid not in free]
        config.stash[_LEFT] = len(free)


_LEFT = pytest.StashKey[int]()
_GUARD = service_free.Guard()


def _service_free(item) -> bool:
    marked = item.get_closest_marker("services") is not None
    return service_free.is_service_free(getattr(item, "fixturenames", ()), marked)


def pytest_terminal_summary(terminalreporter, config):
    if (left := config.stash.get(_LEFT, None)) is not None:
        terminalreporter.write_line(
            f"{left} service-free tests left to the embedded suite ({service_free.SKIP_VARIABLE}=skip)"
        )


@pytest.fixture(autouse=True)
def _service_free_guard(request, monkeypatch):
    """A service-free test reaches no database and no Redis, and sees neither URL."""
    if not _service_free(request.node):
        yield
        return
    for name in service_free.SCRUBBED:
        monkeypatch.delenv(name, raising=False)
    _GUARD.start()
    try:
        yield
    finally:
        used = _GUARD.stop()
    if used:
        pytest.fail(f"service-free test reached {', '.join(sorted(set(used)))}", pytrace=False)


def pytest_runtest_setup(item):
    """A `postgres` test fails in CI's services run when that is not on PostgreSQL."""
    verdict, reason = ci_rules.postgres_verdict(os.environ)
    if verdict == ci_rules.FAIL and item.get_closest_marker("postgres"):
        pytest.fail(reason, pytrace=False)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    """The database every test in this session uses."""
    base = os.environ.get("DATABASE_URL")
    if base and base.startswith("postgresql"):
        yield from postgres_database(base)
    else:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"


@pytest.fixture(scope="session")
def app(database_url, tmp_path_factory):
    """The application, migrated to head once per session."""
    instance = tmp_path_factory.mktemp("instance")
    app = create_app(
        TestConfig, {"SQLALCHEMY_DATABASE_URI": database_url, "INSTANCE_DIR": instance}
    )
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
    return app


@pytest.fixture(autouse=True)
def _clean_tables(request):
    """Empty every table after a test that used the database."""
    yield
    if "app" not in request.fixturenames:
        return
    app = request.getfixturevalue("app")
    with app.app_context():
        db.session.remove()
        with db.engine.begin() as conn:
            for table in reversed(db.metadata.sorted_tables):
                conn.execute(table.delete())


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser():
    """One Debian Chromium for the session, driven by Playwright; missing either fails (no skip)."""
    assert Path(CHROMIUM).exists(), f"Debian's chromium is required at {CHROMIUM}"
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def ctx(app):
    """An application context for service-level tests."""
    with app.app_context():
        yield app
        db.session.remove()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def make_user(app):
    """Create a user with a role; returns its username."""

    def make(username: str = "alice", role: str = "admin") -> str:
        with app.app_context():
            create_user(username, PASSWORD, role)
        return username

    return make


def wait_for(predicate, timeout: float = 30, interval: float = 0.05, message: str = "condition"):
    """Poll until predicate() is truthy; returns its value or fails the test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)  # the poll interval, not a guess at how long something takes
    pytest.fail(f"timed out after {timeout} s waiting for {message}")


def csrf_token(client, path: str = "/login") -> str:
    """Fetch a page and pull the CSRF token out of its form."""
    html = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', html
    )
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def login(client, username: str, password: str = PASSWORD):
    """Sign in through the real form, CSRF token included."""
    token = csrf_token(client)
    return client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}
    )


@pytest.fixture
def admin_client(client, make_user):
    """A test client signed in as an admin."""
    login(client, make_user("admin", "admin"))
    return client
