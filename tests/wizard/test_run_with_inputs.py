"""Run uses what is on the screen, credentials are offered once stored, and credentials a node
refused are never used again: the wizard's views and the API through the test client, the work
queue recorded instead of sent (no worker: the runs stay queued, which is all these rules need)."""

import re
from datetime import timedelta

import pytest

from app.execution import vault
from app.extensions import db
from app.models import Credential, Deployment, NodeAction, StepRun, utcnow
from app.steps import Phase
from app.wizard.forms import StepRunForm
from app.wizard.runs import phase_count
from tests.conftest import csrf_token
from tests.deployment_form import create, deployment_id
from tests.execution.harness import Recorded

PASSWORD = "Canary-WinRM-Pw-41"
LICENSE = "LICENSE-CANARY-0123456789"
PREREQUISITES = {
    "ams_version": "2.1.1069.0",
    "gmsa": "CORP\\svc-ams$",
    "sql_connection_string": "Server=sql01.corp.example.test;Database=AMS;Integrated Security=true",
}


@pytest.fixture
def queue(app, monkeypatch):
    recorded = Recorded()
    monkeypatch.setitem(app.extensions, "amsw_enqueue", recorded)
    return recorded


@pytest.fixture
def dep(admin_client, app, queue):
    assert create(admin_client).status_code == 302
    return deployment_id(app)


def _url(dep: int, step: str, action: str = "") -> str:
    return f"/deployments/{dep}/steps/{step}" + (f"/{action}" if action else "")


def _post(client, dep: int, step: str, action: str, data: dict):
    token = csrf_token(client, _url(dep, step))
    return client.post(_url(dep, step, action), data={**data, "csrf_token": token})


def _counts(app, dep: int) -> tuple[int, int, dict]:
    with app.app_context():
        runs = db.session.scalar(
            db.select(db.func.count()).select_from(StepRun).where(StepRun.deployment_id == dep)
        )
        creds = db.session.scalar(
            db.select(db.func.count())
            .select_from(Credential)
            .where(Credential.deployment_id == dep)
        )
        inputs = db.session.get(Deployment, dep).step("prerequisites").inputs or {}
        return runs, creds, dict(inputs)


def test_run_saves_the_typed_inputs_and_secret_with_the_run(admin_client, app, dep, queue):
    data = PREREQUISITES | {
        "license_key": LICENSE,
        "username": "CORP\\admin",
        "password": PASSWORD,
    }
    response = _post(admin_client, dep, "prerequisites", "run", data)
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    with app.app_context():
        deployment = db.session.get(Deployment, dep)
        record = deployment.step("prerequisites")
        assert record.inputs["ams_version"] == "2.1.1069.0"
        assert "license_key" not in record.inputs  # secrets only in the vault
        run = db.session.scalar(db.select(StepRun).where(StepRun.deployment_id == dep))
        assert run.status in ("queued", "running")
        assert run.inputs["gmsa"] == "CORP\\svc-ams$"
        username, secrets = vault.load_secrets(dep)
        assert username == "CORP\\admin"
        assert secrets["license_key"] == LICENSE
        assert secrets[vault.WINRM_PASSWORD] == PASSWORD
        assert "license_key" in vault.secret_names(dep)
    assert queue.actions  # the first phase went to the workers
    page = admin_client.get(_url(dep, "prerequisites")).get_data(as_text=True)
    assert PASSWORD not in page and LICENSE not in page


@pytest.mark.parametrize(
    "bad",
    [
        {"ams_version": "two point one"},  # a field of the step's form
        {"password": ""},  # the credentials
        {"sql_connection_string": "Server=.\\SQLEXPRESS;Database=AMS;Integrated Security=true"},
    ],
)
def test_a_refused_value_keeps_nothing(admin_client, app, dep, queue, bad):
    data = PREREQUISITES | {
        "license_key": LICENSE,
        "username": "CORP\\admin",
        "password": PASSWORD,
    }
    response = _post(admin_client, dep, "prerequisites", "run", data | bad)
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "othing was saved and nothing ran" in html
    assert 'aria-invalid="true"' in html  # the field says what is wrong
    assert PASSWORD not in html and LICENSE not in html
    if "ams_version" in bad:
        assert 'value="two point one"' in html  # what was typed stays to be corrected
    assert _counts(app, dep) == (0, 0, {})
    assert queue.actions == []


def test_a_blocked_run_keeps_nothing_either(admin_client, app, dep, queue):
    data = {"witness_type": "file_share", "share_path": "\\\\fs01\\witness"}
    data |= {"username": "CORP\\admin", "password": PASSWORD}
    response = _post(admin_client, dep, "quorum", "run", data)
    assert response.status_code == 409
    assert "Finish or skip &#39;Prerequisites&#39;" in response.get_data(as_text=True)
    with app.app_context():
        assert not db.session.get(Deployment, dep).step("quorum").inputs
    assert _counts(app, dep)[:2] == (0, 0)


def _run_prerequisites(client, dep: int) -> None:
    data = PREREQUISITES | {"license_key": LICENSE, "username": "CORP\\admin", "password": PASSWORD}
    assert _post(client, dep, "prerequisites", "run", data).status_code == 302


def _end_run(app, dep: int, *, refused_on: tuple[str, ...] = (), status: str = "succeeded") -> None:
    """The worker's part: the run ends (done, or paused by the nodes `refused_on` refusing the
    logon)."""
    with app.app_context():
        deployment = db.session.get(Deployment, dep)
        run = db.session.scalar(db.select(StepRun).where(StepRun.deployment_id == dep))
        for action in run.actions:
            action.started_at = utcnow()
            action.finished_at = utcnow()
            if action.node_name in refused_on:
                action.status = "failed"
                action.error_category = "auth_failed"
                action.error_message = "Failed to authenticate the user CORP\\admin with ntlm"
            else:
                action.status = "succeeded"
        run.status = "failed" if refused_on else status
        run.finished_at = utcnow()
        run.outcome = {
            "status": "needs_attention" if refused_on else "done",
            "summary": "A node refused the credentials." if refused_on else "Done.",
            "checks": [],
            "failed_nodes": list(refused_on),
            "artifacts": {},
        }
        deployment.step("prerequisites").status = "needs_attention" if refused_on else "done"
        deployment.status = "paused" if refused_on else "in_progress"
        db.session.commit()


def test_the_next_step_offers_the_stored_credentials_and_runs_with_them(
    admin_client, app, dep, queue
):
    _run_prerequisites(admin_client, dep)
    _end_run(app, dep)
    page = admin_client.get(_url(dep, "base_cluster")).get_data(as_text=True)
    assert "Use the stored credentials of <strong>CORP\\admin</strong>" in page
    assert "stored by admin at" in page and "expire at" in page
    assert 'value="stored" checked' in page
    assert PASSWORD not in page
    with app.app_context():
        stored_at = db.session.scalar(db.select(Credential.created_at))
    data = {"cluster_name": "AMSCLU01", "cluster_address": "10.0.0.50", "credentials": "stored"}
    response = _post(admin_client, dep, "base_cluster", "run", data)
    assert response.status_code == 302, response.get_data(as_text=True)[:3000]
    with app.app_context():
        run = db.session.scalar(
            db.select(StepRun).where(
                StepRun.deployment_id == dep, StepRun.step_key == "base_cluster"
            )
        )
        assert run is not None and run.inputs["cluster_name"] == "AMSCLU01"
        row = db.session.scalar(db.select(Credential))
        assert row.created_at == stored_at  # not stored again
        assert vault.load_secrets(dep)[1][vault.WINRM_PASSWORD] == PASSWORD


def test_typed_credentials_win_over_the_preselected_stored_ones(admin_client, app, dep, queue):
    _run_prerequisites(admin_client, dep)
    _end_run(app, dep)
    data = {
        "cluster_name": "AMSCLU01",
        "cluster_address": "10.0.0.50",
        "credentials": "stored",
        "username": "CORP\\other",
        "password": "Another-Pw-7",
    }
    assert _post(admin_client, dep, "base_cluster", "run", data).status_code == 302
    with app.app_context():
        assert vault.load_secrets(dep)[0] == "CORP\\other"
        assert vault.held(dep).username == "CORP\\other"


def test_a_refused_logon_asks_for_credentials_and_refuses_the_same_ones(
    admin_client, app, dep, queue
):
    _run_prerequisites(admin_client, dep)
    _end_run(app, dep, refused_on=("AMS1",))
    page = admin_client.get(_url(dep, "prerequisites")).get_data(as_text=True)
    assert "data-credentials-refused" in page
    assert "AMS1 refused the credentials of CORP\\admin" in page
    assert 'value="stored"' not in page  # no offer of what was just refused
    assert "How do you want to continue?" in page
    assert PASSWORD not in page

    def retry(**extra):
        data = PREREQUISITES | {"decision": "retry"} | extra
        return _post(admin_client, dep, "prerequisites", "decide", data)

    def attempts() -> int:
        with app.app_context():
            return db.session.scalar(
                db.select(db.func.count()).select_from(StepRun).where(StepRun.deployment_id == dep)
            )

    # The stored (refused) credentials, even asked for by hand: refused by the server.
    response = retry(credentials="stored")
    assert response.status_code == 400
    assert "A node refused the stored credentials" in response.get_data(as_text=True)
    # The same user name and password typed again: refused too, nothing kept.
    response = retry(username="corp\\ADMIN", password=PASSWORD)
    assert response.status_code == 409
    assert "just refused" in response.get_data(as_text=True)
    assert attempts() == 1
    # A corrected password: the retry starts with it.
    response = retry(username="CORP\\admin", password="Corrected-Pw-8")
    assert response.status_code == 302, response.get_data(as_text=True)[:3000]
    assert attempts() == 2
    with app.app_context():
        assert vault.load_secrets(dep)[1][vault.WINRM_PASSWORD] == "Corrected-Pw-8"
        assert vault.held(dep).usable


def test_the_service_refuses_stored_credentials_a_node_refused(admin_client, app, dep, queue):
    """Whatever the caller (the reaper's resume, a handover), a retry with them is refused."""
    from app.execution import service

    _run_prerequisites(admin_client, dep)
    _end_run(app, dep, refused_on=("AMS2",))
    with app.app_context():
        with pytest.raises(service.StepBlocked, match="AMS2 refused the credentials"):
            service.resolve_pause(dep, "prerequisites", "retry", "", None, None, queue)
        # Credentials stored after the refusal are new: they may be tried.
        vault.store_credentials(dep, "CORP\\admin", "New-Pw-9")
        assert vault.held(dep).usable
        assert service.resolve_pause(dep, "prerequisites", "retry", "", None, None, queue)


def test_every_node_that_refused_the_credentials_is_named(admin_client, app, dep, queue):
    from app.execution import service

    _run_prerequisites(admin_client, dep)
    _end_run(app, dep, refused_on=("AMS2", "AMS1"))
    said = "AMS1 and AMS2 refused the credentials of CORP\\admin: enter"
    assert said in admin_client.get(_url(dep, "prerequisites")).get_data(as_text=True)
    with app.app_context():
        assert vault.refusal(dep).startswith(said)
        with pytest.raises(service.StepBlocked, match="AMS1 and AMS2 refused the credentials"):
            service.resolve_pause(dep, "prerequisites", "retry", "", None, None, queue)


def test_a_node_that_refused_them_in_test_connections_is_named_with_the_others(
    admin_client, app, dep, queue
):
    from app.events.publish import publish
    from app.execution.probe import TESTED

    _run_prerequisites(admin_client, dep)
    _end_run(app, dep, refused_on=("AMS2",))
    with app.app_context():
        payload = {"ok": False, "category": "auth_failed", "message": "Logon failure."}
        publish(dep, TESTED, payload, node="AMS1")  # the newest refusal, after AMS2's
        assert vault.refusal(dep).startswith("AMS1 and AMS2 refused the credentials of CORP")


def test_an_older_refusal_does_not_taint_newer_credentials(app, admin_client, dep, queue):
    _run_prerequisites(admin_client, dep)
    _end_run(app, dep, refused_on=("AMS1",))
    with app.app_context():
        action = db.session.scalar(db.select(NodeAction).where(NodeAction.status == "failed"))
        row = db.session.scalar(db.select(Credential))
        action.started_at = row.created_at - timedelta(seconds=5)  # tried before they were stored
        db.session.commit()
        assert vault.held(dep).usable
        assert vault.refusal(dep) is None


def test_the_api_refuses_a_retry_with_refused_credentials(app, admin_client, dep, queue):
    from app.api.tokens import create_token
    from app.models import User

    _run_prerequisites(admin_client, dep)
    _end_run(app, dep, refused_on=("AMS1",))
    with app.app_context():
        _, token = create_token(db.session.scalar(db.select(User)), "test")
    api = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    url = f"/api/v1/deployments/{dep}/steps/prerequisites"
    answer = api.post(f"{url}/decision", json={"decision": "retry"}, headers=headers)
    assert answer.status_code == 409 and "refused" in answer.get_json()["message"]
    same = {"decision": "retry", "username": "CORP\\admin", "password": PASSWORD}
    answer = api.post(f"{url}/decision", json=same, headers=headers)
    assert answer.status_code == 409 and "just refused" in answer.get_json()["message"]
    run = api.post(
        f"{url}/run", json={"username": "CORP\\admin", "password": PASSWORD}, headers=headers
    )
    assert run.status_code == 409
    other = {"decision": "retry", "username": "CORP\\admin", "password": "Fixed-Pw-10"}
    answer = api.post(f"{url}/decision", json=other, headers=headers)
    assert answer.status_code == 202, answer.get_json()
    assert PASSWORD not in answer.get_data(as_text=True)


def test_the_pause_panel_shows_node_choices_only_with_a_per_node_option(
    admin_client, app, dep, queue
):
    _run_prerequisites(admin_client, dep)
    _end_run(app, dep, refused_on=("AMS1",))
    page = admin_client.get(_url(dep, "prerequisites")).get_data(as_text=True)
    # Prerequisites run on every node together: no retry-failed, no exclusion, no node boxes.
    assert 'name="nodes"' not in page and 'value="exclude"' not in page
    assert re.search(r'<input checked[^>]*value="retry"', page)  # Retry comes preselected


def test_run_button_names_the_step(admin_client, dep):
    page = admin_client.get(_url(dep, "prerequisites")).get_data(as_text=True)
    assert ">Run Prerequisites</button>" in page
    assert 'form="inputs-form" formaction="/deployments/' in page


def _phases(*names: str) -> list[Phase]:
    return [Phase(n, n.title(), ()) for n in names]


def test_phase_count_follows_the_phases_reached():
    run = StepRun(status="running", phase="detect")
    run.actions = [
        NodeAction(id=1, phase="probe", node_name="A", script="s"),
        NodeAction(id=2, phase="probe", node_name="B", script="s"),
        NodeAction(id=3, phase="detect", node_name="A", script="s"),
    ]
    plan = _phases("probe", "detect", "apply", "verify")
    assert phase_count(run, plan) == {
        "number": 2,
        "total": 4,
        "title": "Detect",
        "names": ["probe", "detect"],
    }
    # A phase the plan did not list still counts; the total is never below the number.
    run.phase = "extra"
    run.actions.append(NodeAction(id=4, phase="extra", node_name="A", script="s"))
    assert phase_count(run, _phases("probe", "detect"))["number"] == 3
    assert phase_count(run, _phases("probe", "detect"))["total"] == 3
    # Nothing to say for a finished run, or one that has not started a phase.
    assert phase_count(StepRun(status="succeeded", phase="detect"), plan) is None
    assert phase_count(StepRun(status="queued", phase=None), plan) is None


def test_the_run_panel_says_which_phase_of_how_many(admin_client, app, dep, queue):
    _run_prerequisites(admin_client, dep)
    page = admin_client.get(_url(dep, "prerequisites")).get_data(as_text=True)
    with app.app_context():
        run = db.session.scalar(db.select(StepRun).where(StepRun.deployment_id == dep))
        deployment = db.session.get(Deployment, dep)
        from app.context import run_view
        from app.guides import get_guide

        step = get_guide(deployment.guide_key).step("prerequisites")
        total = len(step.preview(run_view(deployment, "prerequisites", vault.secret_names(dep))))
        first = run.phase
    assert total >= 2
    assert f"Phase 1 of {total}: " in page
    assert f'data-phase-names="[&#34;{first}&#34;]"' in page or f"&quot;{first}&quot;" in page


def test_held_is_read_once_per_transaction_and_follows_what_it_stores(
    admin_client, app, dep, queue
):
    """A run's start asks for the held credentials several times in one transaction: the vault
    reads them once; what that transaction stores is what it answers next, and a later
    transaction reads again (a refusal recorded meanwhile is seen)."""
    from sqlalchemy import event

    _run_prerequisites(admin_client, dep)
    with app.app_context():
        first = vault.held(dep)
        assert first is not None and first.usable
        statements: list[str] = []

        def record(conn, cursor, statement, *args) -> None:
            statements.append(statement)

        event.listen(db.engine, "before_cursor_execute", record)
        try:
            assert vault.held(dep) is first
        finally:
            event.remove(db.engine, "before_cursor_execute", record)
        assert statements == []  # asked again in the same transaction: no query
    _end_run(app, dep, refused_on=("AMS1",))
    with app.app_context():
        refused = vault.held(dep)  # a new transaction: the refusal recorded since is seen
        assert refused.refused_by == "AMS1" and not refused.usable
        vault.store_credentials(dep, "CORP\\admin", "Corrected-Pw-8", commit=False)
        stored = vault.held(dep)
        assert stored.usable and stored.stored_at > refused.stored_at
        db.session.commit()
        assert vault.held(dep) == stored  # read from the database: what the memo said
        vault.wipe(dep, commit=False)
        assert vault.held(dep) is None


def test_typed_credentials_are_used_without_asking_the_vault(app):
    """What is typed runs: the held credentials are looked up only when the fields are empty."""
    asked: list[int] = []

    def held_now():
        asked.append(1)
        return None  # nothing stored

    typed = {"username": "CORP\\admin", "password": PASSWORD}
    with app.test_request_context(method="POST", data=typed):
        form = StepRunForm(meta={"csrf": False})
        assert form.validate()
        assert form.chosen_credentials(held_now) == (True, ("CORP\\admin", PASSWORD))
    assert asked == []
    with app.test_request_context(method="POST", data={}):
        form = StepRunForm(meta={"csrf": False})
        assert form.validate()
        assert form.chosen_credentials(held_now) == (False, None)
        assert "Enter the WinRM user name and password" in form.username.errors[-1]
    assert asked == [1]
