"""Resuming a half-finished install: take-over, the new driver's own credentials, drift checks.

An operator completes steps 1-5 on a two-node lab through the step service and the real worker and
leaves. Something changes behind the wizard's back (in the lab state); a helpdesk user finds the
deployment in the needs-attention list, takes it over with a reason, enters their OWN WinRM account
on the resume page, and the finished steps are verified again against the lab. Everything the
helpdesk user does goes through the real HTTP views (Flask test client, CSRF tokens from the pages).
"""

from __future__ import annotations

import re
import time
from contextlib import contextmanager
from datetime import timedelta

import pytest
from flask.testing import FlaskClient

from app.execution import vault
from app.extensions import db
from app.handover import drift
from app.lab import auth as lab_auth
from app.lab.handlers import HANDLERS, load_handlers
from app.models import AuditRecord, Credential, Deployment, StepRun, User, utcnow
from tests import lab_world
from tests.conftest import login
from tests.execution.harness import LAB_USER, USER_PASSWORD, make_user
from tests.lab_world import (
    confirm_license,
    events_of,
    inputs_for,
    install_by_hand,
    new_deployment,
    operator_id,
    outcome_text,
    run_prerequisites,
    save_all_inputs,
    start,
    start_world,
    step_status,
)

pytestmark = pytest.mark.slow

NODES = ["AMS1", "AMS2"]
DONE = ("prerequisites", "base_cluster", "quorum", "install_ams", "cluster_role")
HELPDESK = "hank"
HELPDESK_WINRM = ("CORP\\hank-adm", "Hank-0wn-Passw0rd!")  # the helpdesk user's own account


# ------------------------------------------------------------------------------------------------
# Helpers


@contextmanager
def lab_users():
    """Record which WinRM account every lab handler ran under (test-only observation)."""
    load_handlers()
    saved = dict(HANDLERS)
    seen: list[tuple[str, str, str]] = []

    def wrap(name, func):
        def recorded(ctx):
            seen.append((ctx.node, name, ctx.username))
            return func(ctx)

        return recorded

    HANDLERS.update({name: wrap(name, func) for name, func in saved.items()})
    try:
        yield seen
    finally:
        HANDLERS.clear()
        HANDLERS.update(saved)


def token(html: str, action: str | None = None) -> str:
    """The CSRF token of the form posting to `action` (or of the first form)."""
    forms = re.findall(r"<form\b([^>]*)>(.*?)</form>", html, re.S)
    for attrs, body in forms:
        if action is None or f'action="{action}"' in attrs:
            match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', body)
            if match:
                return match.group(1)
    raise AssertionError(f"no form with a CSRF token for {action!r}")


def any_token(html: str) -> str:
    """The session's CSRF token from any form of the page (the sign-out form at least)."""
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)


def resume_form_token(html: str) -> str:
    """The CSRF token of the resume page's own credentials form (no action attribute)."""
    for attrs, body in re.findall(r"<form\b([^>]*)>(.*?)</form>", html, re.S):
        if "action=" not in attrs and 'name="password"' in body:
            return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', body).group(1)
    raise AssertionError("the resume page has no credentials form:\n" + html[:3000])


class Browser(FlaskClient):
    """A test client whose every request gets an application context (and `g`) of its own.

    The test body runs inside the e2e app context; without this, requests would reuse it and share
    `g` (the signed-in user, the cached CSRF token) between the operator's and helpdesk's clients.
    """

    def open(self, *args, **kwargs):
        with self.application.app_context():
            return super().open(*args, **kwargs)


def client_for(app) -> Browser:
    return Browser(app, app.response_class, use_cookies=True)


def sign_in(app, username: str, role: str):
    """A test client signed in through the real login form."""
    make_user(username, role)
    client = client_for(app)
    response = login(client, username, USER_PASSWORD)
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return client


def wait_verified(deployment_id: int, count: int, timeout: float = 120) -> None:
    """Until the deployment has `count` verification.finished events."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.expire_all()
        if len(events_of(deployment_id, "verification.finished")) >= count:
            return
        worker = lab_world.WORKER
        if worker is not None and worker.proc.poll() is not None:
            pytest.fail(f"the worker died:\n{worker.log_path.read_text()[-3000:]}")
        time.sleep(0.2)
    started = [e.payload for e in events_of(deployment_id, "verification.started")]
    verified = [(e.step_key, e.payload) for e in events_of(deployment_id, "step.verified")]
    pytest.fail(f"verification did not finish in {timeout} s: {started} {verified}")


def verdicts(deployment_id: int) -> dict:
    """Each step's verdict in the newest verification batch (for failure messages)."""
    batch = drift.latest_batch(deployment_id)
    runs = drift.batch_runs(deployment_id, batch) if batch else []
    return {
        r.step_key: (
            r.status,
            (r.outcome or {}).get("artifacts", {}).get("verification"),
            outcome_text(r),
        )
        for r in runs
    }


def statuses(deployment_id: int) -> dict[str, str]:
    db.session.expire_all()
    deployment = db.session.get(Deployment, deployment_id)
    out = {s.step_key: s.status for s in deployment.steps}
    db.session.commit()
    return out


def operator_leaves_after_five_steps(tmp_path, app):
    """Steps 1-5 through the step service and the worker; the operator's page holds the lease."""
    store, server = start_world(tmp_path, NODES)
    deployment_id = new_deployment(server, store, name="Resume drift lab")
    save_all_inputs(deployment_id, inputs_for(store))
    confirm_license(deployment_id, store)  # entered in the configuration tool on the first node
    install_by_hand(store)  # the operator installed and configured AMS before step 4
    for step_key in DONE:
        if step_key == "prerequisites":
            run_prerequisites(deployment_id)  # installs the AD module on AMS1, with consent
            continue
        run = start(deployment_id, step_key)
        assert run.status == "succeeded", (step_key, outcome_text(run))
    assert statuses(deployment_id)["failover_test"] == "not_started"
    # The operator signs in (their deployment: operator role) and has the next step open.
    user = db.session.get(User, operator_id())
    user.role = "operator"
    user.set_password(USER_PASSWORD)
    db.session.commit()
    operator = client_for(app)
    assert login(operator, user.username, USER_PASSWORD).status_code == 302
    step_page = operator.get(f"/deployments/{deployment_id}/steps/failover_test")
    assert step_page.status_code == 200
    assert "You are driving this deployment" in step_page.get_data(as_text=True)
    # ... then goes home: the deployment sits idle (its last activity three hours ago).
    deployment = db.session.get(Deployment, deployment_id)
    deployment.last_activity_at = utcnow() - timedelta(hours=3)
    db.session.commit()
    assert db.session.scalar(db.select(Credential).filter_by(deployment_id=deployment_id))
    lab_auth.register_ntlm_user(store.folder, *HELPDESK_WINRM)
    return store, server, deployment_id, operator


def take_over(app, deployment_id: int, reason: str):
    """The helpdesk user finds the deployment, takes it over on the resume page."""
    hank = sign_in(app, HELPDESK, "helpdesk")
    listing = hank.get("/attention").get_data(as_text=True)
    assert f"/deployments/{deployment_id}/resume" in listing, listing[:3000]
    assert "idle for" in listing and "Failover test" in listing
    page = hank.get(f"/deployments/{deployment_id}/resume").get_data(as_text=True)
    assert "is driving this deployment" in page and "e2e-operator" in page
    assert 'name="password"' not in page  # watching: no credentials form until taking over
    action = f"/deployments/{deployment_id}/take-over"
    response = hank.post(action, data={"reason": reason, "csrf_token": token(page, action)})
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/deployments/{deployment_id}/resume")
    return hank


def resume_with_own_credentials(hank, deployment_id: int) -> str:
    page = hank.get(f"/deployments/{deployment_id}/resume").get_data(as_text=True)
    assert "You are driving this deployment" in page
    assert "Credentials are never handed over" in page
    assert LAB_USER not in page  # nothing of the previous driver's account is offered
    username, password = HELPDESK_WINRM
    response = hank.post(
        f"/deployments/{deployment_id}/resume",
        data={"username": username, "password": password, "csrf_token": resume_form_token(page)},
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    return response.headers["Location"]


def assert_take_over_recorded(deployment_id: int, reason: str) -> None:
    db.session.expire_all()
    # The previous driver's secrets (WinRM password, license key) were wiped at take-over.
    taken = events_of(deployment_id, "lease.taken_over")
    assert len(taken) == 1
    assert taken[0].payload["from"] == "e2e-operator" and taken[0].payload["to"] == HELPDESK
    assert taken[0].payload["reason"] == reason
    audit = db.session.scalars(
        db.select(AuditRecord).where(AuditRecord.action == "deployment.taken_over")
    ).all()
    assert len(audit) == 1
    assert audit[0].target == f"deployment:{deployment_id}"
    assert audit[0].actor_name == HELPDESK
    assert audit[0].details["reason"] == reason and audit[0].details["from"] == "e2e-operator"
    db.session.commit()


# ------------------------------------------------------------------------------------------------
# Cases


def run_failover_from_the_page(client, deployment_id: int):
    """The new driver continues at the failover test: Run with their own account, wait."""
    html = client.get(f"/deployments/{deployment_id}/steps/failover_test").get_data(as_text=True)
    action = f"/deployments/{deployment_id}/steps/failover_test/run"
    username, password = HELPDESK_WINRM
    response = client.post(
        action,
        # Run belongs to the step's inputs form (it runs with what the page shows).
        data={
            "username": username,
            "password": password,
            "move_timeout": re.search(r'name="move_timeout"[^>]*value="(\d+)"', html).group(1),
            "csrf_token": any_token(html),
        },
    )
    assert response.status_code == 302
    run_id = db.session.scalar(
        db.select(StepRun.id)
        .filter_by(deployment_id=deployment_id, step_key="failover_test")
        .order_by(StepRun.id.desc())
        .limit(1)
    )
    db.session.commit()
    assert run_id is not None, "the failover test did not start"
    run = lab_world.wait_run(run_id, timeout=120)
    assert run.status == "succeeded", outcome_text(run)
    assert step_status(deployment_id, "failover_test") == "done"
    deployment = db.session.get(Deployment, deployment_id)
    assert deployment.status == "completed"
    db.session.commit()


def set_start_type(store, node: str, start_type: str) -> None:
    with store.transaction() as state:
        state["nodes"][node]["services"]["lithnetams"]["start_type"] = start_type


def test_drift_is_found_shown_and_cleared_after_a_take_over(tmp_path, e2e):
    store, server, deployment_id, operator = operator_leaves_after_five_steps(tmp_path, e2e)
    try:
        # Behind the wizard's back: someone sets lithnetams on AMS2 back to Automatic.
        set_start_type(store, "AMS2", "Automatic")
        reason = "Operator off sick; finishing the failover test."
        hank = take_over(e2e, deployment_id, reason)
        # The previous driver's secrets (WinRM password, license key) were wiped at take-over.
        assert vault.secret_names(deployment_id) == frozenset()
        assert (
            db.session.scalar(db.select(Credential).filter_by(deployment_id=deployment_id)) is None
        )
        db.session.commit()
        assert_take_over_recorded(deployment_id, reason)
        # The previous driver sees it at once and can no longer start anything.
        mine = operator.get(f"/deployments/{deployment_id}/resume").get_data(as_text=True)
        assert f"{HELPDESK}</strong> is driving this deployment" in mine
        assert 'name="password"' not in mine
        refused = operator.post(
            f"/deployments/{deployment_id}/resume",
            data={"username": LAB_USER, "password": "operator-pw", "csrf_token": any_token(mine)},
        )
        assert refused.status_code == 302
        assert vault.secret_names(deployment_id) == frozenset()
        assert drift.latest_batch(deployment_id) is None
        db.session.commit()

        # The helpdesk user's own account; the finished steps are verified again in the lab.
        with lab_users() as seen:
            location = resume_with_own_credentials(hank, deployment_id)
            assert location.endswith(f"/deployments/{deployment_id}/resume")
            wait_verified(deployment_id, 1)
        assert seen, "the verification ran nothing in the lab"
        assert {user for _, _, user in seen} == {HELPDESK_WINRM[0]}, set(seen)
        assert not [c for c in seen if c[1].endswith(("_create_task", "_set", "_start"))], seen
        assert vault.secret_names(deployment_id) == {"winrm_password"}  # nothing else returned

        now = statuses(deployment_id)
        assert now["cluster_role"] == "needs_attention", (now, verdicts(deployment_id))
        for key in DONE[:-1]:
            assert now[key] == "done", (now, verdicts(deployment_id))
        assert now["failover_test"] == "not_started"
        deployment = db.session.get(Deployment, deployment_id)
        assert deployment.status == "paused" and deployment.current_step == "cluster_role"
        batch = drift.latest_batch(deployment_id)
        runs = {r.step_key: r for r in drift.batch_runs(deployment_id, batch)}
        assert list(runs) == list(DONE)
        verification = runs["cluster_role"].outcome["artifacts"]["verification"]
        assert verification["drift"] is True
        [change] = verification["changes"]
        assert change["node"] == "AMS2" and change["after"] == "fail"
        assert change["check"] == "lithnetams starts Automatic on AMS2"
        for key in DONE[:-1]:
            assert runs[key].outcome["artifacts"]["verification"] == {"drift": False, "changes": []}
        db.session.commit()
        paused = events_of(deployment_id, "step.paused")
        assert paused[-1].step_key == "cluster_role" and paused[-1].payload["drift"] is True
        # The resume page shows what changed, where; the list says why it needs attention.
        page = hank.get(f"/deployments/{deployment_id}/resume").get_data(as_text=True)
        assert page.count('badge-done">unchanged') == 4 and page.count('badge-failed">drift') == 1
        assert (
            '<li data-change data-node="AMS2"><strong>lithnetams starts Automatic on AMS2</strong>:'
            " fine when the step finished → fail." in page
        )
        assert "Set-Service -Name lithnetams -StartupType Manual" in page
        listing = hank.get("/attention").get_data(as_text=True)
        assert "drift</td>" in listing and "Cluster role</td>" in listing

        # The helpdesk user undoes the change and resumes again: verified, on to the failover test.
        set_start_type(store, "AMS2", "Manual")
        resume_with_own_credentials(hank, deployment_id)
        wait_verified(deployment_id, 2)
        now = statuses(deployment_id)
        assert all(now[key] == "done" for key in DONE), (now, verdicts(deployment_id))
        deployment = db.session.get(Deployment, deployment_id)
        assert (deployment.status, deployment.current_step) == ("in_progress", "failover_test")
        db.session.commit()
        assert verdicts(deployment_id)["cluster_role"][:2] == (
            "succeeded",
            {"drift": False, "changes": []},
        )
        page = hank.get(f"/deployments/{deployment_id}/resume").get_data(as_text=True)
        assert "Continue at Failover test" in page and 'badge-failed">drift' not in page
        run_failover_from_the_page(hank, deployment_id)
        assert store.read()["cluster"]["groups"]["AMSWEB"]["state"] == "Online"
    finally:
        server.stop()


def test_gmsa_that_no_longer_allows_a_node_is_drift(tmp_path, e2e):
    store, server, deployment_id, _ = operator_leaves_after_five_steps(tmp_path, e2e)
    try:
        with store.transaction() as state:
            state["domain"]["gmsas"]["svc-ams$"]["principals_allowed"] = ["AMS1$"]
        hank = take_over(e2e, deployment_id, "Picking up the install for the weekend.")
        resume_with_own_credentials(hank, deployment_id)
        wait_verified(deployment_id, 1)
        now = statuses(deployment_id)
        found = verdicts(deployment_id)
        assert now["prerequisites"] == "needs_attention", (now, found)
        changes = found["prerequisites"][1]["changes"]
        # The domain check of allowed nodes sees AMS2$ missing (the task as the gMSA is "not
        # verified" on Windows' default batch-logon rights, so it cannot tell).
        assert any(
            c["after"] == "fail"
            and ("allowed to use the service account" in c["check"] or c["node"] == "AMS2")
            for c in changes
        ), changes
        deployment = db.session.get(Deployment, deployment_id)
        assert (deployment.status, deployment.current_step) == ("paused", "prerequisites")
        db.session.commit()
        page = hank.get(f"/deployments/{deployment_id}/resume").get_data(as_text=True)
        assert 'badge-failed">drift' in page and "AMS2" in page
    finally:
        server.stop()


def test_no_drift_resume_verifies_and_continues(tmp_path, e2e):
    _store, server, deployment_id, _ = operator_leaves_after_five_steps(tmp_path, e2e)
    try:
        reason = "Finishing for a colleague."
        hank = take_over(e2e, deployment_id, reason)
        assert vault.secret_names(deployment_id) == frozenset()
        db.session.commit()
        assert_take_over_recorded(deployment_id, reason)
        with lab_users() as seen:
            resume_with_own_credentials(hank, deployment_id)
            wait_verified(deployment_id, 1)
        assert {user for _, _, user in seen} == {HELPDESK_WINRM[0]}
        now = statuses(deployment_id)
        assert all(now[key] == "done" for key in DONE), (now, verdicts(deployment_id))
        found = verdicts(deployment_id)
        assert list(found) == list(DONE)
        assert all(v[:2] == ("succeeded", {"drift": False, "changes": []}) for v in found.values())
        deployment = db.session.get(Deployment, deployment_id)
        assert (deployment.status, deployment.current_step) == ("in_progress", "failover_test")
        db.session.commit()
        page = hank.get(f"/deployments/{deployment_id}/resume").get_data(as_text=True)
        assert page.count('badge-done">unchanged') == 5 and "Continue at Failover test" in page
        run_failover_from_the_page(hank, deployment_id)
    finally:
        server.stop()
