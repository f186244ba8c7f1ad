"""A lab on loopback with the test-only scripts of tests/execution/scripts (no database needed)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from app.lab.handlers import HANDLERS, load_handlers
from tests.execution import (
    labkit,
    testscripts,  # noqa: F401 - registers the test-only vetted scripts
)

USER, PASSWORD = "labadmin", "Lab-Passw0rd!"


@pytest.fixture
def observed():
    return labkit.Observed()


@pytest.fixture
def lab(tmp_path, observed):
    saved = dict(load_handlers())  # restoring a partial registry would drop the real models
    server = labkit.start_lab(tmp_path, ["node1"], USER, PASSWORD, observed)
    yield server
    server.stop()
    HANDLERS.clear()
    HANDLERS.update(saved)
