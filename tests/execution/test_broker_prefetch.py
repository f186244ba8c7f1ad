"""A worker whose every slot was taken takes the next batch as soon as the slots are free.

Celery's blocking consumer loop (the one it runs for the embedded filesystem broker) performs the
acknowledgements of finished tasks between two waits for messages; until they are performed the
worker holds "as many unacknowledged messages as its prefetch allows" and takes nothing. The broker
used to wait out the loop's whole 2 s timeout there, so a batch sent right after a full one started
about 1.5 s late (an 8-node step of 1 s actions took 1.8 s). With Redis, Celery's own event loop
performs them at once; this test runs on whichever broker the suite runs on.
"""

import functools
import time
import uuid
from pathlib import Path

from tests.conftest import wait_for
from tests.execution.harness import Worker

SLOTS = 8  # harness.Worker's concurrency; prefetch multiplier 1 (config.py)
TASK_SECONDS = 0.5


def _batch(celery, queue: str, folder: Path, label: str) -> float:
    """Send SLOTS slow tasks; returns when they were sent."""
    sent = time.time()
    for i in range(SLOTS):
        celery.send_task("tests.slow", (str(folder), f"{label}-{i}", TASK_SECONDS), queue=queue)
    return sent


def _times(folder: Path, label: str, suffix: str) -> list[float]:
    return [float(p.read_text()) for p in folder.glob(f"{label}-*.{suffix}")]


def _all_ended(folder: Path, label: str) -> bool:
    return len(_times(folder, label, "end")) == SLOTS


def test_a_batch_right_after_a_full_one_starts_at_once(exec_app, exec_db_url, tmp_path):
    queue = f"{exec_app.config['CELERY_QUEUE']}-prefetch-{uuid.uuid4().hex[:4]}"
    celery = exec_app.extensions["celery"]
    handle = Worker(
        exec_db_url, tmp_path / "worker.log", queue=queue, includes=("tests.execution.slowtask",)
    )
    try:
        late = []
        for round_ in range(3):
            label = f"r{round_}"
            sent = _batch(celery, queue, tmp_path, label)
            wait_for(functools.partial(_all_ended, tmp_path, label), 20, 0.01, label)
            starts = _times(tmp_path, label, "start")
            late.append(max(starts) - sent)
        # The first round fills an idle worker; every later one is sent the moment the previous
        # one ended, while its acknowledgements are still to be performed.
        assert max(late[1:]) < 0.4, late
    finally:
        handle.stop(graceful=False)
