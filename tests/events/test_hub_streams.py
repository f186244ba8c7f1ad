"""The hub at scale: a tail far behind never claims to be current, closed streams end at once,
streams opened before forget() end, and a process's streams are capped below its threads."""

import socket
import time

import pytest
import requests

from app.events.hub import TAIL_SIZE, Hub
from app.events.publish import publish_many
from app.extensions import db
from tests.execution.harness import LiveServer, make_user, seed_deployment, signed_in_session


def _lines(count: int) -> list[dict]:
    return [{"kind": "node.output", "payload": {"text": f"line {i}"}} for i in range(count)]


def _wait_for(predicate, limit: float) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_a_tail_more_than_one_read_behind_still_serves_what_follows(exec_ctx, lab):
    """The flaky live-log test's cause: a tail built before a big batch (announced by its last
    seq only) read TAIL_SIZE events per notify and meanwhile answered "nothing after" to a client
    that had read the history up to the end, so live events waited for several more notifies."""
    deployment_id = seed_deployment(lab)
    publish_many(deployment_id, _lines(1))
    hub = Hub()
    assert hub.fetch_sse(deployment_id, 0, 100)[2] == 1  # the tail now ends at seq 1

    publish_many(deployment_id, _lines(2 * TAIL_SIZE + 500))
    hub.bump(deployment_id)
    last = 2 * TAIL_SIZE + 501
    assert hub.fetch_sse(deployment_id, last, 100) == (last, "", 0)  # the browser read the history

    publish_many(deployment_id, _lines(3))
    hub.bump(deployment_id)
    assert hub.fetch_sse(deployment_id, last, 100)[::2] == (last + 3, 3)
    assert [e["seq"] for e in hub.fetch(deployment_id, last - 10, 100)] == list(
        range(last - 9, last + 4)
    )


def _open_stream(server, deployment_id: int, cookie: str) -> socket.socket:
    host, port = server.url.split("//")[1].split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(
        f"GET /deployments/{deployment_id}/events HTTP/1.1\r\nHost: {host}\r\n"
        f"Accept: text/event-stream\r\nCookie: {cookie}\r\n\r\n".encode()
    )
    received = b""
    while b"retry:" not in received:
        received += sock.recv(4096)
    return sock


def _cookie(http: requests.Session) -> str:
    return "; ".join(f"{k}={v}" for k, v in http.cookies.items())


@pytest.fixture
def served(exec_ctx, lab):
    """(server, deployment id): a deployment, a user who may sign in, the app on a live port."""
    deployment_id = seed_deployment(lab)
    db.session.commit()
    make_user()
    server = LiveServer(exec_ctx)
    yield server, deployment_id
    server.stop()


def test_a_closed_stream_ends_at_once_not_at_its_next_write(exec_ctx, served):
    server, deployment_id = served
    exec_ctx.config["SSE_KEEPALIVE_SECONDS"] = 15
    cookie = _cookie(signed_in_session(server.url))
    socks = [_open_stream(server, deployment_id, cookie) for _ in range(3)]
    hub = exec_ctx.extensions["amsw_events_hub"]
    assert _wait_for(lambda: hub.streams() == 3, 5)
    closed_at = time.monotonic()
    for sock in socks[:2]:
        sock.close()
    assert _wait_for(lambda: hub.streams() == 1, 3), hub.streams()
    assert time.monotonic() - closed_at < 3  # not the 15 s keep-alive (nor twice that)

    publish_many(deployment_id, _lines(1))  # the one left open still streams
    received = b""
    deadline = time.monotonic() + 5
    while b"line 0" not in received and time.monotonic() < deadline:
        received += socks[2].recv(4096)
    assert b"line 0" in received
    socks[2].close()
    assert _wait_for(lambda: hub.streams() == 0, 3)


def test_streams_open_before_forget_end_and_new_ones_start_afresh(exec_ctx, served):
    server, deployment_id = served
    cookie = _cookie(signed_in_session(server.url))
    sock = _open_stream(server, deployment_id, cookie)
    hub = exec_ctx.extensions["amsw_events_hub"]
    assert _wait_for(lambda: hub.streams() == 1, 5)
    hub.forget()
    assert _wait_for(lambda: hub.streams() == 0, 3)  # ended, without reading anything
    sock.close()
    again = _open_stream(server, deployment_id, cookie)
    assert _wait_for(lambda: hub.streams() == 1, 5)
    again.close()


def test_streams_beyond_the_cap_get_503_and_pages_still_answer(exec_ctx, served):
    server, deployment_id = served
    exec_ctx.config["SSE_MAX_STREAMS"] = 2
    try:
        http = signed_in_session(server.url)
        socks = [_open_stream(server, deployment_id, _cookie(http)) for _ in range(2)]
        hub = exec_ctx.extensions["amsw_events_hub"]
        assert _wait_for(lambda: hub.streams() == 2, 5)
        refused = http.get(f"{server.url}/deployments/{deployment_id}/events", timeout=5)
        assert refused.status_code == 503 and refused.headers["Retry-After"]
        assert http.get(f"{server.url}/", timeout=5).status_code == 200
        socks[0].close()
        assert _wait_for(lambda: hub.streams() == 1, 3)
        with http.get(
            f"{server.url}/deployments/{deployment_id}/events", stream=True, timeout=5
        ) as response:
            assert response.status_code == 200
        socks[1].close()
    finally:
        exec_ctx.config["SSE_MAX_STREAMS"] = 0
