"""Without Redis, a hub's poller reads the database when a writer wakes it, not on its next tick."""

import time

from app.events.hub import Hub
from app.events.publish import publish_many, wake_folder
from tests.execution.harness import seed_deployment


def test_a_publish_wakes_the_polling_hub_at_once(exec_app, exec_ctx, lab, monkeypatch):
    monkeypatch.setitem(exec_app.config, "REDIS_URL", None)  # the embedded mode, in both CI runs
    monkeypatch.setitem(exec_app.config, "SSE_POLL_SECONDS", 30.0)  # polling alone: 30 s late
    deployment_id = seed_deployment(lab)
    hub = Hub()
    hub.ensure_started(exec_app)
    marker = wake_folder(exec_app) / hub._listener.name
    assert marker.exists()
    try:
        with hub.watching(deployment_id) as watch:
            before = watch.version()
            published_at = time.monotonic()
            publish_many(deployment_id, [{"kind": "node.output", "payload": {"text": "hi"}}])
            assert watch.wait(before, timeout=5.0)
            assert time.monotonic() - published_at < 2.0
            assert hub.fetch(deployment_id, 0, 10)[-1]["payload"] == {"text": "hi"}
    finally:
        hub.stop()
        hub._thread.join(5)
    assert not hub._thread.is_alive()  # stop() interrupts the 30 s wait
    assert not marker.exists()  # the stopped hub withdrew its wake-up socket


def test_after_forget_the_same_sequence_number_again_is_news(exec_app, exec_ctx, lab, monkeypatch):
    """A database emptied beneath the running app (as between tests, or a restore) hands out the
    same deployment id and event numbers again: once forget() ran, the poller must not take the
    new event for one it already announced."""
    from app.extensions import db
    from app.models import Deployment, Event

    monkeypatch.setitem(exec_app.config, "REDIS_URL", None)
    monkeypatch.setitem(exec_app.config, "SSE_POLL_SECONDS", 30.0)
    deployment_id = seed_deployment(lab)
    hub = Hub()
    hub.ensure_started(exec_app)
    try:
        with hub.watching(deployment_id) as watch:
            before = watch.version()
            publish_many(deployment_id, [{"kind": "node.output", "payload": {"text": "one"}}])
            assert watch.wait(before, timeout=5.0)
        seq = db.session.get(Deployment, deployment_id).event_seq
        # The database as it was before that event: the same number comes again.
        db.session.execute(
            db.delete(Event).where(Event.deployment_id == deployment_id, Event.seq == seq)
        )
        db.session.get(Deployment, deployment_id).event_seq = seq - 1
        db.session.commit()
        hub.forget()
        with hub.watching(deployment_id) as watch:
            before = watch.version()
            publish_many(deployment_id, [{"kind": "node.output", "payload": {"text": "two"}}])
            assert db.session.get(Deployment, deployment_id).event_seq == seq
            assert watch.wait(before, timeout=5.0), "the poller took the new event for the old"
    finally:
        hub.stop()
        hub._thread.join(5)
