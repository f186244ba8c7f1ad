"""Security headers on every kind of response; no caching of exports, reports and runbooks; and
templates that the Content-Security-Policy lets run as they are (no inline script or style)."""

import re
from pathlib import Path

import pytest

from app.api.tokens import create_token
from app.extensions import db
from app.models import User
from app.security import CONTENT_SECURITY_POLICY, NO_STORE_ENDPOINTS
from tests.conftest import ROOT, csrf_token, login

EXPECTED = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
NODES = {
    "name": "Headers",
    "domain_fqdn": "corp.example.test",
    "nodes-0-name": "AMS1",
    "nodes-0-host": "10.0.0.1",
    "nodes-1-name": "AMS2",
    "nodes-1-host": "10.0.0.2",
    **{f"nodes-{i}-{k}": v for i in (0, 1) for k, v in (("port", "5985"), ("transport", "http"))},
    **{f"nodes-{i}-auth": "ntlm" for i in (0, 1)},
}


@pytest.fixture
def browser_client(client, make_user):
    """A signed-in admin and the id of a deployment they created through the form."""
    login(client, make_user("admin", "admin"))
    data = {**NODES, "csrf_token": csrf_token(client, "/deployments/new")}
    created = client.post("/deployments/new", data=data)
    assert created.status_code == 302
    deployment_id = int(re.search(r"/deployments/(\d+)/", created.headers["Location"])[1])
    return client, deployment_id


@pytest.fixture
def bearer(app, browser_client):
    with app.app_context():
        user = db.session.scalar(db.select(User).where(User.username == "admin"))
        return {"Authorization": f"Bearer {create_token(user, 'headers')[1]}"}


def _pages(d: int) -> dict[str, str]:
    """One URL per kind of response the app gives a browser."""
    return {
        "list": "/",
        "step page": f"/deployments/{d}/steps/quorum",
        "edit form": f"/deployments/{d}/edit",
        "history": "/history",
        "bad search (400)": "/history?q=%00",
        "history detail": f"/deployments/{d}/history",
        "dashboard": "/dashboard",
        "audit": "/audit",
        "attention": "/attention",
        "users": "/admin/users",
        "tokens": "/account/tokens",
        "api docs": "/api/docs",
        "events json": f"/deployments/{d}/events.json",
        "not found (404)": "/no/such/page",
        "static css": "/static/css/app.css",
        "static js": "/static/js/app.js",
        "openapi": "/api/v1/openapi.json",
        "report": f"/deployments/{d}/report",
        "csv export": "/history.csv",
        "json export": f"/deployments/{d}/export.json",
        "runbook": f"/deployments/{d}/runbook.ps1",
        "step runbook": f"/deployments/{d}/steps/quorum/runbook.ps1",
    }


def test_every_kind_of_page_has_the_headers(browser_client):
    client, deployment_id = browser_client
    for kind, url in _pages(deployment_id).items():
        response = client.get(url)
        assert response.status_code < 500, kind
        for name, value in EXPECTED.items():
            assert response.headers.get(name) == value, (kind, name, response.headers.get(name))


def test_anonymous_pages_and_redirects_have_the_headers(client):
    for url in ("/login", "/", "/favicon.ico"):
        response = client.get(url)
        assert response.status_code in (200, 301, 302), url
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY, url
        assert response.headers["X-Frame-Options"] == "DENY", url


def test_api_answers_have_the_headers(browser_client, bearer):
    client, deployment_id = browser_client
    for url in (
        f"/api/v1/deployments/{deployment_id}",
        "/api/v1/deployments/999999",
        f"/api/v1/deployments/{deployment_id}/export",
        f"/api/v1/deployments/{deployment_id}/runbook.ps1",
    ):
        response = client.get(url, headers=bearer)
        for name, value in EXPECTED.items():
            assert response.headers.get(name) == value, (url, name)
    unauthorised = client.get("/api/v1/deployments", headers={"Authorization": "Bearer nope"})
    assert unauthorised.headers["X-Content-Type-Options"] == "nosniff"


NO_STORE = ["report", "csv export", "json export", "runbook", "step runbook"]


@pytest.mark.parametrize("kind", NO_STORE)
def test_exports_reports_and_runbooks_are_never_cached(browser_client, kind):
    client, deployment_id = browser_client
    response = client.get(_pages(deployment_id)[kind])
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"


def test_api_exports_are_never_cached(browser_client, bearer):
    client, deployment_id = browser_client
    for path in ("export", "runbook.ps1", "steps/quorum/runbook.ps1"):
        response = client.get(f"/api/v1/deployments/{deployment_id}/{path}", headers=bearer)
        assert response.status_code == 200, path
        assert response.headers["Cache-Control"] == "no-store", path


def test_ordinary_pages_keep_their_caching(browser_client):
    client, _ = browser_client
    assert "no-store" not in client.get("/static/css/app.css").headers.get("Cache-Control", "")


def test_no_store_names_real_endpoints(app):
    assert set(app.view_functions) >= NO_STORE_ENDPOINTS


def test_the_policy_allows_no_inline_script_or_style():
    directives = dict(part.strip().split(" ", 1) for part in CONTENT_SECURITY_POLICY.split(";"))
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"
    assert "unsafe" not in CONTENT_SECURITY_POLICY


TEMPLATES = sorted((ROOT / "templates").rglob("*.html"))
INLINE = [
    (re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I), "inline <script>"),
    (re.compile(r"\son[a-z]+\s*=", re.I), "on* event handler attribute"),
    (re.compile(r"javascript:", re.I), "javascript: URL"),
    (re.compile(r"\sstyle\s*=", re.I), "style attribute"),
    (re.compile(r"<style[\s>]", re.I), "<style> element"),
]


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: str(p.relative_to(ROOT)))
def test_templates_hold_nothing_the_policy_blocks(template: Path):
    source = template.read_text()
    for pattern, what in INLINE:
        assert not pattern.search(source), f"{what} in {template.name}"
