"""The runner with real pypsrp against the in-process lab: live streams, JSON result, failure categories."""

import threading
import time

import pytest
from pypsrp.exceptions import WSManFaultError

from app.remote import errors, scripts
from app.remote.runner import Connection, NodeSession, run_script
from tests.remote.conftest import PASSWORD, USER


def conn(lab, auth="basic", password=PASSWORD, port=None, **kw):
    return Connection(
        "127.0.0.1",
        port or lab.ports["node1"],
        auth=auth,
        username=USER,
        password=password,
        connection_timeout=3,
        **kw,
    )


@pytest.mark.parametrize("auth", ["basic", "ntlm", "negotiate"])
def test_parses_the_json_result(lab, auth):
    result = run_script(conn(lab, auth), "exec_echo", {"Text": "hé"})
    assert result.data == {"text": "hé"}
    assert result.objects == ['{"text": "h\\u00e9"}'] or result.objects[0].startswith("{")
    assert result.had_errors is False


def test_every_stream_is_delivered_with_the_result(lab):
    seen = []
    result = run_script(conn(lab), "exec_streams", {"Message": "m"}, on_record=seen.append)
    streams = {r["stream"] for r in seen}
    assert {"error", "warning", "information", "progress", "verbose"} <= streams
    assert result.errors[0]["message"] == "error: m" and result.had_errors
    assert result.warnings == ["warning: m"] and result.information == ["information: m"]
    assert next(r for r in seen if r["stream"] == "progress")["percent"] == 40


def test_records_arrive_while_the_script_runs(lab):
    stamps = []
    started = time.monotonic()
    run_script(
        conn(lab),
        "exec_apply",
        {"Seconds": 1.5},
        on_record=lambda r: stamps.append((time.monotonic() - started, r["stream"])),
    )
    progress = [t for t, s in stamps if s == "progress"]
    assert len(progress) >= 3
    assert progress[0] < 0.5, "first progress record was not delivered live"
    assert progress[-1] - progress[0] > 0.8


def test_secure_parameters_reach_the_script(lab, observed):
    run_script(conn(lab, "ntlm"), "exec_apply", {"Seconds": 0}, secure_params={"Secret": "s3cret!"})
    assert observed.secrets_seen == ["s3cret!"]


def test_script_failure_is_script_error(lab):
    with pytest.raises(errors.RemoteError) as info:
        run_script(conn(lab), "exec_fail", {"Reason": "nope"})
    assert info.value.category == errors.SCRIPT_ERROR
    assert "exec_fail: nope" in info.value.message and not info.value.transient


def test_wrong_password_is_auth_failed(lab):
    with pytest.raises(errors.RemoteError) as info:
        run_script(conn(lab, "ntlm", password="wrong"), "exec_echo")
    assert info.value.category == errors.AUTH_FAILED and not info.value.transient


def test_closed_port_is_unreachable_and_transient(lab):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(errors.RemoteError) as info:
        run_script(conn(lab, port=port), "exec_echo")
    assert info.value.category == errors.UNREACHABLE and info.value.transient


def test_timeout_stops_the_script(lab, observed):
    started = time.monotonic()
    with pytest.raises(errors.RemoteError) as info:
        run_script(conn(lab), "exec_apply", {"Seconds": 20}, timeout=1)
    assert info.value.category == errors.TIMEOUT
    assert time.monotonic() - started < 5
    assert observed.stopped.wait(5)


def test_cancel_event_stops_the_script(lab, observed):
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    with pytest.raises(errors.RemoteError) as info:
        run_script(conn(lab), "exec_apply", {"Seconds": 20}, cancel_event=cancel)
    assert info.value.category == errors.CANCELLED
    assert observed.stopped.wait(5)
    assert observed.applies == {}


def test_session_reuses_one_pool(lab):
    session = NodeSession(conn(lab, "ntlm"))
    try:
        first = session.run("exec_echo", {"Text": "1"})
        pool = session._pool
        second = session.run("exec_echo", {"Text": "2"})
        assert (first.data, second.data) == ({"text": "1"}, {"text": "2"})
        assert session._pool is pool
    finally:
        session.close()


def test_an_open_pool_does_not_read_the_proxy_environment_per_message(lab, monkeypatch):
    """The proxy was settled when the pool opened; later messages must not scan os.environ."""
    import requests.utils

    session = NodeSession(conn(lab, "ntlm"))
    try:
        session.run("exec_echo", {"Text": "first"})

        def refuse(*args, **kwargs):
            raise AssertionError("the proxy environment was read again")

        monkeypatch.setattr(requests.utils, "get_environ_proxies", refuse)
        monkeypatch.setattr(requests.utils, "should_bypass_proxies", refuse)
        assert session.run("exec_echo", {"Text": "again"}).data == {"text": "again"}
    finally:
        session.close()


def test_unknown_or_path_like_names_are_refused():
    for name in ("nope", "../app/scripts/connection_probe", "connection_probe.ps1", ""):
        with pytest.raises(scripts.UnknownScript):
            scripts.load(name)


def test_copy_file_verifies_and_reports_progress(lab, tmp_path):
    from app.remote.runner import copy_file

    source = tmp_path / "blob.bin"
    source.write_bytes(bytes(range(256)) * 4096)
    progress = []
    remote = copy_file(
        conn(lab, "ntlm"), str(source), r"C:\Temp\blob.bin", lambda s, t: progress.append((s, t))
    )
    assert remote.lower().endswith("blob.bin")
    assert progress[-1] == (source.stat().st_size, source.stat().st_size)


def test_a_shell_lost_mid_script_is_an_interruption_not_a_script_error():
    """A node that restarts mid-script answers 'shell not found': the outcome is unknown."""
    fault = WSManFaultError(
        errors.SHELL_NOT_FOUND,
        "s:Receiver",
        "The request for the Windows Remote Shell with ShellId X failed because the shell was "
        "not found on the server.",
        "w:InvalidSelectors",
        None,
    )
    err = errors.classify(fault, host="ams1")
    assert err.category == errors.INTERRUPTED
    assert "Wait until the node answers again" in err.remediation
    assert not err.transient
