"""FailoverTest.advance() with fabricated results: every node passes, one node fails, restore."""

from app.guides.cluster.failover_test import STEP
from tests.guides.cluster_views import failed, make_view, ok, run_until_finish

KEY = "failover_test"


def world(bad=(), unreachable=()):
    def answer(phase, a):
        if a.node in unreachable:
            return failed(a.node, a.script, "Cannot reach the node", "unreachable")
        if a.script == "failover_move":
            target = a.params["Node"]
            state = "Failed" if target in bad else "Online"
            error = "failed to come online" if target in bad else None
            return ok(
                a.node,
                a.script,
                {"owner": target, "state": state, "error": error, "elapsed_seconds": 4.5},
            )
        return ok(a.node, a.script, {"service_status": "Running", "status_code": 200})

    return answer


def test_every_node_passes_with_a_table():
    view = make_view(KEY)
    finish, ran = run_until_finish(STEP, view, world())
    assert ran == ["move_AMS1", "probe_AMS1", "move_AMS2", "probe_AMS2"]
    assert finish.status == "done"
    table = finish.artifacts["failover_table"]
    assert [r["node"] for r in table] == ["AMS1", "AMS2"]
    assert table[1] == {
        "node": "AMS2",
        "owner": "AMS2",
        "owner_ok": True,
        "state": "Online",
        "service_running": True,
        "health_status": 200,
        "seconds": 4.5,
        "error": None,
        "passed": True,
    }
    move = view.results["move_AMS2"]["AMS2"]
    assert move.script == "failover_move"


def test_move_and_probe_parameters():
    phase = STEP.advance(make_view(KEY))
    assert phase.changes_state
    assert phase.actions[0].params == {"Name": "AMSWEB", "Node": "AMS1", "WaitSeconds": 120}
    view = make_view(KEY, {"move_AMS1": {"AMS1": world()(phase, phase.actions[0])}})
    probe = STEP.advance(view)
    assert probe.name == "probe_AMS1" and probe.actions[0].node == "AMS1"
    assert probe.actions[0].params == {
        "HostName": "amsweb.corp.example.test",
        "Port": 443,
        "ValidateCertificate": True,
    }


def test_failing_last_node_is_reported_and_role_restored():
    finish, ran = run_until_finish(STEP, make_view(KEY), world(bad={"AMS2"}))
    assert ran == ["move_AMS1", "probe_AMS1", "move_AMS2", "restore"]
    assert finish.status == "needs_attention" and finish.failed_nodes == ("AMS2",)
    row = finish.artifacts["failover_table"][1]
    assert row["state"] == "Failed" and row["error"] == "failed to come online"
    assert next(c for c in finish.checks if c.key == "restore").status == "pass"


def test_failing_first_node_continues_to_the_next_without_restore():
    finish, ran = run_until_finish(STEP, make_view(KEY), world(bad={"AMS1"}))
    assert ran == ["move_AMS1", "move_AMS2", "probe_AMS2"]
    assert finish.failed_nodes == ("AMS1",)


def test_unhealthy_service_fails_the_node():
    def answer(phase, a):
        if a.script == "failover_probe" and a.node == "AMS2":
            return ok(
                a.node,
                a.script,
                {"service_status": "Running", "status_code": None, "error": "trust"},
            )
        return world()(phase, a)

    finish, _ = run_until_finish(STEP, make_view(KEY), answer)
    check = next(c for c in finish.checks if c.node == "AMS2")
    assert check.status == "fail" and "health-check" in check.remediation


def test_unreachable_node_fails_only_that_node():
    finish, _ = run_until_finish(STEP, make_view(KEY), world(unreachable={"AMS2"}))
    assert finish.failed_nodes == ("AMS2",)


def test_preview_lists_moves_probes_and_restore():
    names = [p.name for p in STEP.preview(make_view(KEY))]
    assert names == ["move_AMS1", "probe_AMS1", "move_AMS2", "probe_AMS2", "restore"]
