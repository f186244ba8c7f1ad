"""Registers tests/execution/scripts as vetted scripts in the process that imports it.

The test process imports it through the harness; each test `celery worker` through
`--include tests.execution.testscripts` (Celery imports included modules before it takes a task).
The product itself reads no switch for this: only test code calls `register_dir`.
"""

from pathlib import Path

from app.remote import scripts

SCRIPTS = Path(__file__).resolve().parent / "scripts"
scripts.register_dir(SCRIPTS)
