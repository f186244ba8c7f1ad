"""SSE over real HTTP: replay after Last-Event-ID, live delivery, no loss and no duplicates; pagination."""

import threading

import requests
from sqlalchemy import select

from app.events.publish import publish, publish_many
from app.extensions import db
from app.models import Event
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
