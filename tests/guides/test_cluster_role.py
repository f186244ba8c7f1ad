"""ClusterRole.advance() with fabricated results: create, adopt, conflicts, waits, diagnostics."""

from app.guides.cluster.cluster_role import MAX_WAITS, STEP
from app.wizard.route import inner_script
from tests.guides.cluster_views import check_keys, failed, make_view, ok, run_until_finish

KEY = "cluster_role"
ROLE = {"group": "AMSWEB", "owner": "AMS1", "state": "Online", "address": "10.20.0.51"}


def detect(roles=(), name_in_use=None):
    return {"roles": list(roles), "name_in_use": name_in_use, "nodes": []}


def service(node, start_type="Manual", status=None):
    return {
        "installed": True,
        "service": {
            "start_type": start_type,
            "status": status or ("Running" if node == "AMS1" else "Stopped"),
        },
    }


def world(roles=(), create=None, wait_states=("Online",), start_type="Manual"):
    waits = list(wait_states)

    def answer(phase, a):
        script = inner_script(a.script, a.params)
        if script == "role_detect":
            return ok(a.node, a.script, detect(roles))
        if script == "role_create":
            return create or ok(
                a.node, a.script, {"group": "AMSWEB", "owner": "AMS1", "state": "Pending"}
            )
        if script == "role_wait":
            state = waits.pop(0) if waits else "Pending"
            return ok(a.node, a.script, {"group": "AMSWEB", "owner": "AMS1", "state": state})
        if script == "role_diagnostics":
            return ok(
                a.node,
                a.script,
                {"cluster_log": ["ERR [RES] Generic Service failed 1067"], "events": []},
            )
        return ok(a.node, a.script, service(a.node, start_type))

    return answer


def test_role_is_created_in_a_scheduled_task_waited_for_and_verified():
    view = make_view(KEY)
    finish, ran = run_until_finish(STEP, view, world())
    assert ran == ["detect", "create", "wait_1", "verify"]
    create = STEP.advance(make_view(KEY, {"detect": view.results["detect"]}))
    action = create.actions[0]
    assert create.changes_state and action.script == "task_run"
    assert action.params["ScriptName"] == "role_create"
    assert action.params["Parameters"] == {"Name": "AMSWEB", "StaticAddress": "10.20.0.51"}
    assert action.secrets == {"TaskUser": "winrm_username", "TaskPassword": "winrm_password"}
    assert finish.status == "done" and finish.artifacts["method"] == "scheduled_task"


def test_credssp_session_runs_role_create_directly():
    detected = {"AMS1": ok("AMS1", "role_detect", detect())}
    phase = STEP.advance(make_view(KEY, {"detect": detected}, auth="credssp"))
    assert phase.actions[0].script == "role_create" and phase.actions[0].secrets == {}
    finish, _ = run_until_finish(STEP, make_view(KEY, auth="credssp"), world())
    assert finish.artifacts["method"] == "credssp"


def test_existing_online_role_is_adopted_without_create_or_wait():
    finish, ran = run_until_finish(STEP, make_view(KEY), world(roles=[ROLE]))
    assert ran == ["detect", "verify"]
    assert finish.status == "done" and finish.artifacts["method"] == "adopted"


def test_lithnetams_clustered_under_another_name_stops():
    finish, ran = run_until_finish(STEP, make_view(KEY), world(roles=[{**ROLE, "group": "OLDAMS"}]))
    assert ran == ["detect"] and finish.status == "needs_attention"
    assert "OLDAMS" in finish.checks[0].remediation


def test_name_taken_by_another_group_stops():
    def answer(phase, a):
        return ok(
            a.node,
            a.script,
            detect(name_in_use={"group": "AMSWEB", "resources": [{"type": "File Server"}]}),
        )

    finish, ran = run_until_finish(STEP, make_view(KEY), answer)
    assert ran == ["detect"] and finish.checks[0].key == "name_in_use"


def test_pending_role_is_polled_until_online():
    _, ran = run_until_finish(
        STEP, make_view(KEY), world(wait_states=("Pending", "Pending", "Online"))
    )
    assert ran == ["detect", "create", "wait_1", "wait_2", "wait_3", "verify"]


def test_role_that_never_comes_online_gets_diagnostics_once():
    finish, ran = run_until_finish(STEP, make_view(KEY), world(wait_states=()))
    assert ran == [
        "detect",
        "create",
        *[f"wait_{i}" for i in range(1, MAX_WAITS + 1)],
        "diagnostics",
    ]
    assert finish.status == "needs_attention"
    assert "AMS1" in finish.artifacts["diagnostics"]
    assert any(c.key == "diagnostics:AMS1" for c in finish.checks)


def test_failed_role_gathers_diagnostics():
    finish, ran = run_until_finish(STEP, make_view(KEY), world(wait_states=("Failed",)))
    assert ran[-1] == "diagnostics" and check_keys(finish) == {"role_state"}


def test_second_hop_create_failure_skips_diagnostics():
    error = failed("AMS1", "task_run", "Access is denied.", "access_denied")
    finish, ran = run_until_finish(STEP, make_view(KEY), world(create=error))
    assert ran == ["detect", "create"] and finish.failed_nodes == ("AMS1",)
    assert "second hop" in finish.checks[0].remediation


def test_start_type_not_manual_is_a_node_check():
    finish, _ = run_until_finish(STEP, make_view(KEY), world(roles=[ROLE], start_type="Automatic"))
    assert check_keys(finish) == {"start_type:AMS1", "start_type:AMS2"}


def test_preview_lists_every_phase():
    names = [p.name for p in STEP.preview(make_view(KEY))]
    assert names == ["detect", "create", "start", "wait_1", "verify", "diagnostics"]


def test_a_failed_role_found_on_retry_is_started_again():
    failed_role = {**ROLE, "state": "Failed"}

    def answer(phase, a):
        if a.script == "role_start":
            return ok(a.node, a.script, {"group": "AMSWEB", "owner": "AMS1", "state": "Online"})
        return world(roles=[failed_role])(phase, a)

    finish, ran = run_until_finish(STEP, make_view(KEY), answer)
    assert ran == ["detect", "start", "verify"]
    assert finish.status == "done" and "brought online again" in finish.summary


def test_a_role_that_stays_failed_after_start_gets_diagnostics():
    failed_role = {**ROLE, "state": "Failed"}

    def answer(phase, a):
        if a.script == "role_start":
            return ok(a.node, a.script, {"group": "AMSWEB", "owner": "AMS1", "state": "Failed"})
        return world(roles=[failed_role])(phase, a)

    finish, ran = run_until_finish(STEP, make_view(KEY), answer)
    assert ran == ["detect", "start", "diagnostics"]
    assert finish.status == "needs_attention" and "role_state" in check_keys(finish)
