"""The embedded broker never shows a consumer a half-written message (a worker died on one), and a
consumer waiting for work is woken by the put rather than its next poll."""

import json
import os
import threading
import time
import uuid
from pathlib import Path

from app import create_app, wake
from app.execution import broker as broker_module
from config import TestConfig, _celery_settings
from tests.conftest import wait_for


def test_messages_are_written_whole_then_renamed_into_place(tmp_path, monkeypatch):
    app = create_app(TestConfig, {"CELERY": _celery_settings(None, tmp_path)})
    queue = f"race-{uuid.uuid4().hex[:6]}"
    seen = []
    real_replace = os.replace

    def replace(src, dst):
        # At the moment the message becomes visible under its consumer-matched name ...
        assert not os.path.exists(dst)
        assert not str(src).endswith(f".{queue}.msg")
        seen.append(json.loads(Path(src).read_bytes()))  # ... the temp file is already whole.
        return real_replace(src, dst)

    with app.extensions["celery"].connection_for_write() as conn:
        channel = conn.default_channel
        monkeypatch.setattr(os, "replace", replace)
        channel._put(queue, {"body": "x" * 100_000})
        monkeypatch.setattr(os, "replace", real_replace)
        assert seen and seen[0]["body"] == "x" * 100_000
        assert channel._get(queue)["body"] == "x" * 100_000


def _connection(tmp_path, polling_interval: float):
    """A broker connection configured as the app configures its own (folders, polling interval)."""
    settings = {"CELERY": _celery_settings(None, tmp_path), "BROKER_POLL_SECONDS": polling_interval}
    return create_app(TestConfig, settings).extensions["celery"].connection_for_write()


def _wait_until_listening(conn) -> None:
    """Until the consumer announced its wake-up socket (right before its first wait)."""
    folder = Path(broker_module.wake_folder(conn.transport_options))
    wait_for(
        lambda: any(p.name.startswith(wake.PREFIX) for p in folder.glob("*")),
        10,
        0.01,
        f"the consumer's wake-up marker in {folder}",
    )


def _take_one(tmp_path, polling_interval: float, body: str) -> tuple[str, float]:
    """Start a consumer, put a message from another connection, time how long it took to arrive."""
    queue = f"wake-{uuid.uuid4().hex[:6]}"
    with _connection(tmp_path, polling_interval) as consumer_conn:
        consumer = consumer_conn.SimpleQueue(queue)
        taken: dict = {}

        def consume():
            message = consumer.get(block=True, timeout=10)
            taken["at"] = time.monotonic()
            taken["body"] = message.payload
            message.ack()

        thread = threading.Thread(target=consume)
        thread.start()
        _wait_until_listening(consumer_conn)  # it has looked, found nothing, and is waiting
        with _connection(tmp_path, polling_interval) as producer_conn:
            put_at = time.monotonic()
            producer_conn.SimpleQueue(queue).put(body)
        thread.join(15)
        consumer.close()
    return taken["body"], taken["at"] - put_at


def test_a_waiting_consumer_is_woken_by_the_put_not_by_its_polling(tmp_path):
    body, waited = _take_one(tmp_path, polling_interval=30.0, body="now")
    assert body == "now"
    assert waited < 2.0  # with only polling it would have waited up to 30 s


def test_without_a_wake_up_the_consumer_still_polls(tmp_path, monkeypatch):
    monkeypatch.setattr(broker_module.wake, "wake", lambda *_args, **_kwargs: 0)
    body, waited = _take_one(tmp_path, polling_interval=0.2, body="later")
    assert body == "later"
    assert waited < 5.0
