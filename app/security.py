"""Security headers on every response, and no caching of downloads that hold a deployment's record.

Scripts and styles come from static/ only (no inline script, no style attributes), so the policy
needs no 'unsafe-inline'; the vendored Swagger UI page runs under the same policy.
"""

from flask import Flask, request
from werkzeug.middleware.proxy_fix import ProxyFix

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
        "base-uri 'none'",
        "object-src 'none'",
    )
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
# Exports, reports and runbooks: a deployment's whole record, never kept in a browser or proxy cache.
NO_STORE_ENDPOINTS = frozenset(
    {
        "history.export_csv",
        "history.export_json",
        "history.report",
        "runbook.deployment_runbook",
        "runbook.step_runbook",
        "api.export",
        "api.deployment_runbook",
        "api.step_runbook",
    }
)


def add_security_headers(response):
    """after_request: the headers above (a view's own value wins), no-store on the downloads."""
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if request.endpoint in NO_STORE_ENDPOINTS:
        response.headers["Cache-Control"] = "no-store"
    return response


def register_security(app: Flask) -> None:
    """Hook the headers; believe X-Forwarded-For/-Proto of TRUSTED_PROXIES reverse proxies."""
    app.after_request(add_security_headers)
    proxies = int(app.config.get("TRUSTED_PROXIES") or 0)
    if proxies > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)
