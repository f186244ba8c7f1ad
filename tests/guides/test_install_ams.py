"""InstallAms.advance() with fabricated results: manual checklist, unattended install with polling,
per-node mismatches, host config applied, nothing repeated when already installed."""

import pytest

from app.guides.cluster.install_ams import MAX_POLLS, STEP
from app.steps import RunOptions
from tests.guides.cluster_views import (
    ALL_INPUTS,
    THUMBPRINT,
    answering,
    check_keys,
    failed,
    make_view,
    ok,
    run_until_finish,
)

KEY = "install_ams"
CONNECTION = ALL_INPUTS["prerequisites"]["sql_connection_string"]
SQL_SERVER = CONNECTION.split(";")[0].split("=", 1)[1]


def installed(node, **changes):
    data = {
        "computer": node,
        "installed": True,
        "service": {"status": "Running", "start_type": "Automatic", "account": "CORP\\svc-ams$"},
        "version": "2.1.1069.0",
        "uninstall_version": "2.1.1069.0",
        "configured": 1,
        "connection_string": CONNECTION.replace("Server", "server"),
        "binding": {"port": 443, "present": True, "thumbprint": THUMBPRINT},
        "certificate": {
            "thumbprint": THUMBPRINT,
            "present": True,
            "has_private_key": True,
            "expired": False,
            "dns_names": ["amsweb.corp.example.test"],
            "covers": {"AMSWEB": False, "amsweb.corp.example.test": True},
        },
        "host_config": {"available": True, "web_app_enabled": True, "api_enabled": True},
        "license": {"present": node == "AMS1"},
    }
    data.update(changes)
    return data


def absent(node):
    return {"computer": node, "installed": False, "service": None}


def test_already_installed_everywhere_is_verified_without_changes():
    finish, ran = run_until_finish(
        STEP, make_view(KEY), lambda p, a: ok(a.node, a.script, installed(a.node))
    )
    assert ran == ["detect"]
    assert finish.status == "done"
    assert finish.artifacts["nodes"]["AMS2"]["version"] == "2.1.1069.0"


def test_manual_mode_gives_a_checklist_per_missing_node():
    answer = answering(lambda n: installed(n) if n == "AMS1" else absent(n))
    finish, ran = run_until_finish(STEP, make_view(KEY), answer)
    assert ran == ["detect"]
    assert finish.status == "needs_attention" and finish.failed_nodes == ("AMS2",)
    steps = finish.artifacts["manual_checklist"]["AMS2"]
    assert any("CORP\\svc-ams$" in s for s in steps) and any(CONNECTION in s for s in steps)
    assert not any("license" in s.lower() for s in steps)  # only the first node takes the license


def test_manual_checklist_for_first_node_includes_the_license():
    finish, _ = run_until_finish(
        STEP, make_view(KEY), lambda p, a: ok(a.node, a.script, absent(a.node))
    )
    assert any("license" in s.lower() for s in finish.artifacts["manual_checklist"]["AMS1"])
    assert "Start with the first node (AMS1)" in finish.summary


def unattended_world(polls_needed=2, exit_code=0, fail_start=None):
    state = {"installed": set(), "polls": 0}

    def answer(phase, a):
        if a.script == "ams_detect":
            return ok(
                a.node,
                a.script,
                installed(a.node) if a.node in state["installed"] else absent(a.node),
            )
        if a.script == "ams_install_start":
            if a.node == fail_start:
                return failed(
                    a.node, a.script, "The installer was not found at 'C:\\Windows\\Temp\\x.exe'."
                )
            return ok(a.node, a.script, {"process_id": 4200, "log_path": a.params["LogPath"]})
        state["polls"] += 1
        done = phase.name == f"poll_{polls_needed}"
        if done and exit_code == 0:
            state["installed"].add(a.node)
        return ok(
            a.node,
            a.script,
            {
                "running": not done,
                "exit_code": exit_code if done else None,
                "succeeded": done and exit_code == 0,
                "log_tail": ["MSI (s): status"],
                "log_path": a.params["LogPath"],
            },
        )

    return answer


def test_unattended_install_starts_once_polls_then_verifies():
    view = make_view(
        KEY,
        install_mode="unattended",
        installer_name="LithnetAccessManagerService-2.1.1069.0-x64.exe",
    )
    finish, ran = run_until_finish(STEP, view, unattended_world())
    assert ran == ["detect", "install_start", "poll_1", "poll_2", "detect_after_install"]
    start = STEP.advance(
        make_view(
            KEY,
            {"detect": view.results["detect"]},
            install_mode="unattended",
            installer_name="LithnetAccessManagerService-2.1.1069.0-x64.exe",
        )
    )
    params = start.actions[0].params
    assert (
        params["InstallerPath"]
        == "C:\\Windows\\Temp\\LithnetAccessManagerService-2.1.1069.0-x64.exe"
    )
    properties = params["Properties"]
    assert properties["USER_NAME"] == "CORP\\svc-ams$"
    assert properties["INSTALL_SQL_EXPRESS"] == "0"  # else every node gets its own SQL Express
    assert properties["SQLSERVER"] == SQL_SERVER
    assert "CONNECTION_STRING" not in properties  # the installer has no such property
    assert start.changes_state
    assert finish.status == "done" and "experimental" in finish.summary


def test_poll_phases_wait_and_are_bounded():
    view = make_view(KEY, install_mode="unattended", installer_name="setup.exe")
    finish, ran = run_until_finish(
        STEP, view, unattended_world(polls_needed=10**6), limit=MAX_POLLS + 10
    )
    assert (
        ran[-1] == "detect_after_install"
        and len([r for r in ran if r.startswith("poll_")]) == MAX_POLLS
    )
    poll = STEP.advance(
        make_view(
            KEY,
            {k: view.results[k] for k in ran[:2]},
            install_mode="unattended",
            installer_name="setup.exe",
        )
    )
    assert poll.name == "poll_1" and poll.wait_before > 0
    assert check_keys(finish) >= {"install_timeout:AMS1", "install_timeout:AMS2"}


def test_installer_failure_and_start_failure_are_reported_per_node():
    view = make_view(KEY, install_mode="unattended", installer_name="setup.exe")
    finish, _ = run_until_finish(STEP, view, unattended_world(exit_code=1603, fail_start="AMS2"))
    assert finish.status == "needs_attention"
    assert {"install_exit:AMS1", "install_start:AMS2"} <= check_keys(finish)


def test_unattended_without_installer_file_needs_attention():
    finish, ran = run_until_finish(
        STEP,
        make_view(KEY, install_mode="unattended"),
        lambda p, a: ok(a.node, a.script, absent(a.node)),
    )
    assert ran == ["detect"] and finish.checks[0].key == "installer_name"


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"version": "3.0.1638.0", "uninstall_version": "3.0.1638.0"}, "version:AMS2"),
        ({"service": {"account": "CORP\\other$", "start_type": "Automatic"}}, "account:AMS2"),
        ({"configured": 0}, "configured:AMS2"),
        ({"certificate": {"thumbprint": THUMBPRINT, "present": False}}, "certificate:AMS2"),
        ({"binding": {"port": 443, "present": True, "thumbprint": "B" * 40}}, "binding:AMS2"),
        ({"binding": {"port": 443, "present": False}}, "binding:AMS2"),
    ],
)
def test_each_mismatch_is_a_check_on_its_node(changes, key):
    answer = answering(lambda n: installed(n, **changes) if n == "AMS2" else installed(n))
    finish, ran = run_until_finish(STEP, make_view(KEY), answer)
    assert ran == ["detect"]
    assert finish.status == "needs_attention" and finish.failed_nodes == ("AMS2",)
    assert key in check_keys(finish)
    check = next(c for c in finish.checks if c.key == key)
    assert check.node == "AMS2" and check.evidence and check.remediation


def test_license_is_required_on_the_first_node_only():
    answer = answering(lambda n: installed(n, license={"present": False}))
    finish, _ = run_until_finish(STEP, make_view(KEY), answer)
    assert check_keys(finish) == {"license:AMS1"}


def test_certificate_must_cover_the_access_point_name():
    cert = {
        **installed("x")["certificate"],
        "covers": {"AMSWEB": False, "amsweb.corp.example.test": False},
    }
    finish, _ = run_until_finish(
        STEP, make_view(KEY), lambda p, a: ok(a.node, a.script, installed(a.node, certificate=cert))
    )
    assert check_keys(finish) == {"certificate_name:AMS1", "certificate_name:AMS2"}


def test_web_app_and_api_are_applied_where_they_differ_then_rechecked():
    applied = set()

    def answer(p, a):
        if a.script == "ams_set_host_config":
            applied.add(a.node)
            return ok(a.node, a.script, {"restarted": True})
        api = a.node != "AMS2" or a.node in applied
        return ok(
            a.node,
            a.script,
            installed(
                a.node, host_config={"available": True, "web_app_enabled": True, "api_enabled": api}
            ),
        )

    view = make_view(KEY)
    finish, ran = run_until_finish(STEP, view, answer)
    assert ran == ["detect", "host_config", "detect_final"]
    assert [a.node for a in view.results["host_config"].values()] == ["AMS2"]
    assert finish.status == "done"


def test_unreachable_node_is_a_failed_node_and_others_still_verified():
    def answer(phase, a):
        if a.node == "AMS2":
            return failed(a.node, a.script, "refused", "unreachable")
        return ok(a.node, a.script, installed(a.node))

    finish, _ = run_until_finish(STEP, make_view(KEY), answer)
    assert finish.failed_nodes == ("AMS2",)
    assert check_keys(finish) == {"detect:AMS2"}


def test_preview_lists_install_phases_in_unattended_mode():
    names = [
        p.name
        for p in STEP.preview(make_view(KEY, install_mode="unattended", installer_name="s.exe"))
    ]
    assert names == [
        "detect",
        "install_start",
        "poll_1",
        "detect_after_install",
        "host_config",
        "detect_final",
    ]


def test_retry_on_the_second_node_only_does_not_ask_it_for_the_license():
    """retry_failed runs on AMS2 alone: the license stays the deployment's first node's."""
    view = make_view(KEY, nodes=["AMS2"])
    view.options = RunOptions(nodes=("AMS2",))
    view.all_nodes = ("AMS1", "AMS2")
    finish, _ = run_until_finish(STEP, view, lambda p, a: ok(a.node, a.script, installed(a.node)))
    assert finish.status == "done", [c.key for c in finish.checks if c.status == "fail"]


def test_connection_string_is_written_by_set_amshostconfig():
    """The installer only records SQLSERVER; the step sets the connection string the service
    reads (Parameters\\ConnectionString) with Set-AmsHostConfig, on the nodes that differ."""
    other = "Server=sql2;Database=AccessManager;Integrated Security=true"
    answer = answering(
        lambda n: installed(n, connection_string=other) if n == "AMS2" else installed(n)
    )
    view = make_view(KEY)
    finish, ran = run_until_finish(STEP, view, answer)
    assert ran[:2] == ["detect", "host_config"]
    phase = STEP.advance(make_view(KEY, {"detect": view.results["detect"]}))
    assert phase.name == "host_config" and [a.node for a in phase.actions] == ["AMS2"]
    assert phase.actions[0].params["ConnectionString"] == CONNECTION
    assert "connection_string:AMS2" in check_keys(finish)  # this fake node never changes
