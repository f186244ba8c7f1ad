"""SSE over real HTTP: replay after Last-Event-ID, live delivery, no loss and no duplicates; pagination."""

import threading

import pytest
import requests
from sqlalchemy import select

from app.events.publish import publish, publish_many
from app.extensions import db
from app.models import Event, User
from tests.execution.harness import (
    LiveServer,
    make_user,
    read_sse,
    seed_deployment,
    signed_in_session,
)


def _publish(app, deployment_id: int, start: int, count: int) -> None:
    with app.app_context():
        publish_many(
            deployment_id,
            [
                {"kind": "node.output", "payload": {"text": f"line {i}"}, "node": "node1"}
                for i in range(start, start + count)
            ],
        )


def _server(exec_ctx):
    make_user()
    return LiveServer(exec_ctx)


def test_reconnect_with_last_event_id_gets_exactly_the_missed_events(exec_ctx, lab):
    deployment_id = seed_deployment(lab)
    server = _server(exec_ctx)
    try:
        http = signed_in_session(server.url)
        _publish(exec_ctx, deployment_id, 0, 5)
        url = f"{server.url}/deployments/{deployment_id}/events"
        with http.get(url, stream=True, timeout=10) as first:
            assert first.headers["Content-Type"].startswith("text/event-stream")
            got = read_sse(first, 5)
        assert [e["id"] for e in got] == [1, 2, 3, 4, 5]
        assert got[-1]["data"]["payload"] == {"text": "line 4"}

        _publish(exec_ctx, deployment_id, 5, 7)  # while the browser is away
        with http.get(url, stream=True, timeout=10, headers={"Last-Event-ID": "5"}) as second:
            replayed = read_sse(second, 7)
            threading.Timer(0.3, _publish, (exec_ctx, deployment_id, 12, 3)).start()
            live = read_sse(second, 3)
        assert [e["id"] for e in replayed] == list(range(6, 13))
        assert [e["id"] for e in live] == [13, 14, 15]
        assert [e["data"]["payload"]["text"] for e in replayed + live] == [
            f"line {i}" for i in range(5, 15)
        ]
    finally:
        server.stop()


def test_live_events_from_concurrent_writers_arrive_once_in_order(exec_ctx, lab):
    deployment_id = seed_deployment(lab)
    server = _server(exec_ctx)
    try:
        http = signed_in_session(server.url)
        with http.get(
            f"{server.url}/deployments/{deployment_id}/events?after=0", stream=True, timeout=20
        ) as resp:
            writers = [
                threading.Thread(target=_publish, args=(exec_ctx, deployment_id, i * 100, 20))
                for i in range(4)
            ]
            for w in writers:
                w.start()
            got = read_sse(resp, 80, timeout=20)
            for w in writers:
                w.join()
        assert [e["id"] for e in got] == list(range(1, 81))
        seqs = db.session.scalars(
            select(Event.seq).where(Event.deployment_id == deployment_id)
        ).all()
        assert sorted(seqs) == list(range(1, 81))
    finally:
        server.stop()


def test_events_json_paginates_by_seq(exec_ctx, lab):
    deployment_id = seed_deployment(lab)
    for i in range(25):
        publish(deployment_id, "node.output", {"text": str(i)}, node="node1")
    make_user()
    client = exec_ctx.test_client()
    with client.session_transaction() as sess:
        from app.models import User

        sess["_user_id"] = db.session.query(User).filter_by(username="viewer").one().get_id()
        sess["_fresh"] = True
    page = client.get(f"/deployments/{deployment_id}/events.json?after=0&limit=10").get_json()
    assert [e["seq"] for e in page["events"]] == list(range(1, 11)) and page["more"]
    page = client.get(
        f"/deployments/{deployment_id}/events.json?after={page['next_after']}&limit=20"
    ).get_json()
    assert [e["seq"] for e in page["events"]] == list(range(11, 26)) and not page["more"]


def test_stream_requires_sign_in(exec_ctx, lab):
    deployment_id = seed_deployment(lab)
    server = _server(exec_ctx)
    try:
        response = requests.get(
            f"{server.url}/deployments/{deployment_id}/events",
            allow_redirects=False,
            timeout=5,
            stream=True,
        )
        assert response.status_code in (302, 401)
    finally:
        server.stop()


def _lines_until_closed(stream, limit: float) -> list[str]:
    """The lines a stream (an iter_lines iterator) sends until the server ends it; fails after
    `limit` seconds."""
    ended = threading.Event()
    lines: list[str] = []

    def read() -> None:
        for line in stream:
            lines.append(line)
        ended.set()

    threading.Thread(target=read, daemon=True).start()
    assert ended.wait(limit), f"the stream was still open after {limit} s: {lines}"
    return lines


def _assert_ends_soon(stream) -> None:
    """The stream ends; at most one more keep-alive first (its check may have run just before
    the change committed), and no event."""
    lines = [line for line in _lines_until_closed(stream, limit=5) if line]
    assert lines in ([], [": keep-alive"]), lines


def _wait_for_keepalive(stream) -> None:
    for line in stream:
        if line.startswith(": keep-alive"):
            return
    raise AssertionError("the stream ended before its first keep-alive")


@pytest.mark.parametrize("change", ["disable", "reset_password"])
def test_an_open_stream_ends_when_its_viewer_may_no_longer_watch(exec_ctx, lab, change):
    deployment_id = seed_deployment(lab)
    server = _server(exec_ctx)
    exec_ctx.config["SSE_KEEPALIVE_SECONDS"] = 0.3
    try:
        http = signed_in_session(server.url)
        url = f"{server.url}/deployments/{deployment_id}/events"
        with http.get(url, stream=True, timeout=10) as response:
            stream = response.iter_lines(decode_unicode=True)
            _wait_for_keepalive(stream)  # a viewer in good standing keeps the stream
            user = db.session.scalar(select(User).where(User.username == "viewer"))
            if change == "disable":
                user.active = False
            else:
                user.set_password("a-new-password-for-the-test")
            db.session.commit()
            _assert_ends_soon(stream)
    finally:
        exec_ctx.config["SSE_KEEPALIVE_SECONDS"] = 15
        server.stop()


def test_an_open_api_stream_ends_when_its_token_is_revoked(exec_ctx, lab):
    from app.api.tokens import create_token, revoke_token

    deployment_id = seed_deployment(lab)
    make_user()
    user = db.session.scalar(select(User).where(User.username == "viewer"))
    token, secret = create_token(user, "stream test")
    server = LiveServer(exec_ctx)
    exec_ctx.config["SSE_KEEPALIVE_SECONDS"] = 0.3
    try:
        url = f"{server.url}/api/v1/deployments/{deployment_id}/events/stream"
        headers = {"Authorization": f"Bearer {secret}"}
        with requests.get(url, headers=headers, stream=True, timeout=10) as response:
            assert response.status_code == 200
            stream = response.iter_lines(decode_unicode=True)
            _wait_for_keepalive(stream)
            revoke_token(user, token.id)
            db.session.commit()
            _assert_ends_soon(stream)
    finally:
        exec_ctx.config["SSE_KEEPALIVE_SECONDS"] = 15
        server.stop()
