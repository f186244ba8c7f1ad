"""Events carried by a Redis notify are served from the hub's memory, exactly as the database has them."""

from sqlalchemy import event as sa_event

from app.events import publish as publishing
from app.events.hub import Hub, query_events, sse_text
from app.events.publish import notify_message, publish_many
from app.extensions import db
from tests.execution.harness import seed_deployment


def _lines(start: int, count: int) -> list[dict]:
    return [
        {"kind": "node.output", "payload": {"text": f"line {i}"}, "node": "node1"}
        for i in range(start, start + count)
    ]


class _Statements:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, *_args) -> None:
        self.count += 1


def _capture_notifies(monkeypatch) -> list[str]:
    """The notify messages publish_many would send to Redis (as if Redis were configured)."""
    sent: list[str] = []
    monkeypatch.setattr(publishing, "redis_client", lambda url=None: object())
    monkeypatch.setattr(
        publishing,
        "notify",
        lambda _dep, seq, events=None: sent.append(notify_message(seq, events)),
    )
    return sent


def test_carried_events_need_no_query_and_match_the_database(exec_ctx, lab, monkeypatch):
    deployment_id = seed_deployment(lab)
    publish_many(deployment_id, _lines(0, 2))
    hub = Hub()
    last, _, count = hub.fetch_sse(deployment_id, 0, 100)  # a client catches up: tail at seq 2
    assert (last, count) == (2, 2)

    sent = _capture_notifies(monkeypatch)
    publish_many(deployment_id, _lines(2, 3))
    assert sent and sent[-1].startswith("{")
    hub.feed(deployment_id, sent[-1].encode())
    hub.bump(deployment_id)

    statements = _Statements()
    sa_event.listen(db.engine, "before_cursor_execute", statements)
    try:
        last, text, count = hub.fetch_sse(deployment_id, 2, 100)
    finally:
        sa_event.remove(db.engine, "before_cursor_execute", statements)
    assert (last, count, statements.count) == (5, 3, 0)
    from_db = "".join(sse_text(e) for e in query_events(deployment_id, 2, 100))
    assert text == from_db


def test_a_carried_batch_that_does_not_follow_the_tail_is_read_from_the_database(
    exec_ctx, lab, monkeypatch
):
    deployment_id = seed_deployment(lab)
    publish_many(deployment_id, _lines(0, 1))
    hub = Hub()
    hub.fetch_sse(deployment_id, 0, 100)

    sent = _capture_notifies(monkeypatch)
    publish_many(deployment_id, _lines(1, 2))  # seq 2-3: this notify is lost
    publish_many(deployment_id, _lines(3, 2))  # seq 4-5: does not follow seq 1
    hub.feed(deployment_id, sent[-1])
    hub.bump(deployment_id)

    last, text, count = hub.fetch_sse(deployment_id, 1, 100)
    assert (last, count) == (5, 4)
    assert [f"line {i}" in text for i in range(1, 5)] == [True] * 4


def test_big_batches_are_announced_by_seq_only():
    events = [{"seq": i, "payload": {"text": "x" * 1000}} for i in range(1, 60)]
    assert notify_message(59, events) == "59"
    assert notify_message(3, events[:3]).startswith('{"last":3,')
