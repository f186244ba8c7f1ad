"""WSGI entry for bench/remote.py: the app with the test-only guides registered."""

import tests.execution.testguide  # noqa: F401 - registers the exec-echo guide
from app import create_app

app = create_app()
