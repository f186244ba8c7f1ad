"""End-to-end fixtures: the worker's database, one real Celery worker for the session (its own
queue), a lab per module (reset between cases from saved states), and the test-only lab
observation hook.

Nothing here skips: a missing PostgreSQL/Redis (when DATABASE_URL/REDIS_URL are set), Chromium or
Playwright fails the test.
"""

import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests import lab_world
from tests.execution.harness import (  # noqa: F401 - fixtures
    QueueEnqueue,
    Worker,
    exec_app,
    exec_ctx,
    exec_db_url,
)
from tests.lab_world import observe_lab


@pytest.fixture(scope="session")
def e2e_worker(exec_app, exec_db_url, tmp_path_factory):  # noqa: F811
    """A real `celery worker` on a queue of its own; the app sends every task there."""
    queue = f"amsw-e2e-{uuid.uuid4().hex[:8]}"
    log = tmp_path_factory.mktemp("e2e-worker") / "worker.log"
    handle = Worker(exec_db_url, log, queue=queue)
    exec_app.extensions["amsw_enqueue"] = QueueEnqueue(exec_app, queue)
    lab_world.WORKER = handle
    yield handle
    lab_world.WORKER = None
    exec_app.extensions.pop("amsw_enqueue", None)
    handle.stop(graceful=False)


@pytest.fixture
def lab_calls():
    """What every lab handler received during the test (wraps the handler registry)."""
    with observe_lab() as seen:
        yield seen


@pytest.fixture
def e2e(exec_ctx, e2e_worker):  # noqa: F811 - fixtures imported from the harness
    """An app context on the worker's database with the real worker running."""
    return exec_ctx
