"""The embedded broker never shows a consumer a half-written message (a worker died on one)."""

import json
import os
import uuid
from pathlib import Path

from app import create_app
from config import TestConfig, _celery_settings


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
