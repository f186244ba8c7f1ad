"""Fixtures for these tests: real database, lab and Celery worker (see tests/execution/harness.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.execution.harness import (  # noqa: F401
    exec_app,
    exec_ctx,
    exec_db_url,
    lab,
    observed,
    worker,
)
