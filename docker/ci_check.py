"""docker/ci.sh's client: through the TLS proxy of the running compose stack, as a person and then
as an API client would, sign in, make a token, create a deployment on the demo lab and run its
Prerequisites step (the worker container talks to the lab's nodes), and check it finishes.

Reads (environment): AMSW_URL (https://localhost:<port>), AMSW_CA (the CA file the proxy's
certificate is checked against), AMSW_ADMIN_PASSWORD_FILE, AMSW_LAB_PASSWORD_FILE,
AMSW_LAB_STATE (the lab's state as `flask lab show --json` printed it). Prints one JSON line.
"""

import json
import os
import re
import sys
import time
from pathlib import Path

import requests

SPOOFED = "203.0.113.66"  # a client's own X-Forwarded-For: the proxy must replace it
LICENSE = "LAB-LICENSE-" + "7" * 20


def fail(message: str) -> None:
    print(f"ci_check: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', html
    )
    if not match:
        fail("no csrf_token on the page")
    return match.group(1)


def sign_in(base: str, session: requests.Session, password: str) -> None:
    page = session.get(f"{base}/login", timeout=30)
    if page.status_code != 200:
        fail(f"GET /login: {page.status_code}")
    answer = session.post(
        f"{base}/login",
        data={"username": "admin", "password": password, "csrf_token": csrf_token(page.text)},
        headers={"Referer": f"{base}/login", "X-Forwarded-For": SPOOFED},
        allow_redirects=False,
        timeout=30,
    )
    if answer.status_code != 302:
        fail(f"sign-in answered {answer.status_code}, not a redirect")
    cookie = answer.headers.get("Set-Cookie", "")
    if "Secure" not in cookie or "HttpOnly" not in cookie:
        fail(f"session cookie without Secure/HttpOnly: {cookie.split(';', 1)[1:]}")
    home = session.get(f"{base}/", allow_redirects=False, timeout=30)
    if home.status_code != 200:
        fail(f"signed-in home page: {home.status_code} (the session did not stick)")


def make_token(base: str, session: requests.Session) -> str:
    page = session.get(f"{base}/account/tokens", timeout=30)
    created = session.post(
        f"{base}/account/tokens",
        data={"name": "ci", "csrf_token": csrf_token(page.text)},
        headers={"Referer": f"{base}/account/tokens"},
        timeout=30,
    )
    match = re.search(r'id="new-token"[^>]*>([^<]+)<', created.text)
    if created.status_code != 201 or not match:
        fail(f"token page answered {created.status_code}")
    return match.group(1).strip()


class Api:
    def __init__(self, base: str, token: str, verify: str) -> None:
        self.base = f"{base}/api/v1"
        self.session = requests.Session()
        self.session.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise replace `verify`
        self.session.verify = verify
        self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, body=None, expect=200):
        response = self.session.request(method, self.base + path, json=body, timeout=60)
        if response.status_code != expect:
            fail(f"{method} {path}: {response.status_code} {response.text[:300]}")
        return response.json()


def settle(api: Api, deployment_id: int, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = api.call("GET", f"/deployments/{deployment_id}/status")
        step = next(s for s in status["steps"] if s["key"] == "prerequisites")
        if status["active_run"] is None and step["status"] in ("done", "needs_attention"):
            return step
        time.sleep(0.5)
    fail(f"the Prerequisites step did not settle in {timeout:.0f} s")
    return {}


def prerequisites(api: Api, lab: dict, lab_password: str) -> dict:
    nodes = [
        {"name": name, "host": "127.0.0.1", "port": 5985 + i, "auth": "ntlm"}
        for i, name in enumerate(lab["nodes"])
    ]
    body = {"name": "CI demo lab", "domain_fqdn": lab["domain"]["fqdn"], "nodes": nodes}
    deployment_id = api.call("POST", "/deployments", body, expect=201)["id"]
    hints = lab["suggested_inputs"]
    inputs = {k: hints[k] for k in ("ams_version", "gmsa", "sql_connection_string")}
    api.call(
        "PUT",
        f"/deployments/{deployment_id}/steps/prerequisites/inputs",
        inputs | {"license_key": LICENSE},
    )
    credentials = {"username": "labadmin", "password": lab_password}
    started = time.monotonic()
    run = f"/deployments/{deployment_id}/steps/prerequisites/run"
    api.call("POST", run, credentials, expect=202)
    first = settle(api, deployment_id)
    failed = [c for c in first["runs"][0]["outcome"]["checks"] if c["status"] == "fail"]
    if [c["key"] for c in failed] != ["ad_module"]:
        fail(f"first run: {first['runs'][0]['outcome'].get('summary')}")
    # Windows as shipped: the AD module is missing; apply the offered fix and run again.
    api.call("POST", run, credentials | {"fix": failed[0]["fix"]["id"]}, expect=202)
    second = settle(api, deployment_id)
    if second["status"] != "done":
        fail(f"second run: {second['runs'][0]['outcome'].get('summary')}")
    actions = second["runs"][0]["actions"]
    if {a["node"] for a in actions} != set(lab["nodes"]):
        fail(f"actions ran on {sorted({a['node'] for a in actions})}")
    events = api.call("GET", f"/deployments/{deployment_id}/events?after=0&limit=1000")
    if lab_password in json.dumps(events):
        fail("the lab password is in the deployment's events")
    return {
        "deployment": deployment_id,
        "prerequisites": second["status"],
        "actions": len(actions),
        "events": len(events["events"]),
        "seconds": round(time.monotonic() - started, 1),
    }


def main() -> None:
    base = os.environ["AMSW_URL"].rstrip("/")
    ca = os.environ["AMSW_CA"]
    password = Path(os.environ["AMSW_ADMIN_PASSWORD_FILE"]).read_text().strip()
    lab_password = Path(os.environ["AMSW_LAB_PASSWORD_FILE"]).read_text().strip()
    lab = json.loads(Path(os.environ["AMSW_LAB_STATE"]).read_text())
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise replace `verify`
    session.verify = ca  # the CA docker/ci.sh made, and only it; never verify=False
    sign_in(base, session, password)
    api = Api(base, make_token(base, session), ca)
    result = prerequisites(api, lab, lab_password)
    print(json.dumps({"signed_in": True, "spoofed_xff": SPOOFED} | result))


if __name__ == "__main__":
    main()
