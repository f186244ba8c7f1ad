"""Fixtures for the execution tests (see harness.py)."""

from tests.execution.harness import exec_app, exec_ctx, exec_db_url, lab, observed, worker  # noqa: F401
