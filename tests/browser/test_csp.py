"""In Chromium, under the app's Content-Security-Policy: no page's script, style or image is
refused (console "Refused to ..." or a securitypolicyviolation event), the Swagger UI renders, and
the report's print button, moved out of an inline handler, still works."""

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import sign_in

pytestmark = pytest.mark.browser

WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(e.violatedDirective + " " + (e.blockedURI || "inline"));
});
window.print = () => { window.__printed = (window.__printed || 0) + 1; };
"""
STEPS = ("prerequisites", "base_cluster", "quorum", "install_ams", "cluster_role")


def _pages(d: int) -> list[str]:
    return [
        "/",
        "/deployments/new",
        *(f"/deployments/{d}/steps/{key}" for key in STEPS),
        f"/deployments/{d}/steps/summary",
        f"/deployments/{d}/edit",
        f"/deployments/{d}/connections",
        f"/deployments/{d}/resume",
        f"/deployments/{d}/history",
        "/history",
        "/dashboard",
        "/audit",
        "/attention",
        "/admin/users",
        "/admin/users/new",
        "/account/tokens",
        "/account/password",
    ]


@pytest.fixture
def watched(page, user):
    """The page with every CSP refusal collected, signed in through the real form: console
    messages ("Refused to ..." in older Chromium, "... violates the following Content Security
    Policy directive ..." in newer) and the page's own securitypolicyviolation events (WATCH)."""
    refused: list[str] = []

    def note(text: str) -> None:
        if "Refused to" in text or "Content Security Policy" in text:
            refused.append(text)

    page.on("console", lambda message: note(message.text))
    page.add_init_script(WATCH)
    sign_in(page, user)
    return page, refused


def _violations(page) -> list[str]:
    return page.evaluate("window.__csp || []")


def test_main_pages_break_no_rule_of_the_policy(watched, deployment_id):
    page, refused = watched
    for url in _pages(deployment_id):
        response = page.goto(url)
        assert response.status < 400, url
        assert "script-src 'self'" in response.headers["content-security-policy"]
        page.wait_for_load_state("load")
        assert _violations(page) == [], url
    assert refused == []


def test_the_api_reference_renders_under_the_policy(watched):
    page, refused = watched
    page.goto("/api/docs")
    expect(page.locator("#swagger-ui .info .title")).to_contain_text("AMS Cluster Wizard API")
    expect(page.locator("#swagger-ui .opblock").first).to_be_visible()
    assert _violations(page) == [] and refused == []


def test_the_report_print_button_works_without_inline_script(watched, deployment_id):
    page, refused = watched
    page.goto(f"/deployments/{deployment_id}/report")
    page.get_by_role("button", name="Print or save as PDF").click()
    assert page.evaluate("window.__printed") == 1
    assert _violations(page) == [] and refused == []


def test_an_inline_script_would_be_refused(watched):
    """The watch itself works: a script injected into the page is refused and reported."""
    page, refused = watched
    page.goto("/")
    page.evaluate(
        """() => { const s = document.createElement("script");
                   s.textContent = "window.__ran = true"; document.body.appendChild(s); }"""
    )
    page.wait_for_function("() => window.__csp.length > 0")
    assert page.evaluate("window.__ran") is None
    assert any("script-src" in v for v in _violations(page))
    assert any("inline script" in text for text in refused), refused
