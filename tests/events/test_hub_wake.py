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
