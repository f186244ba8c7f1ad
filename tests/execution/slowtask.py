"""A test-only Celery task that sleeps and notes when it began and ended (tests of the broker).

Included in a test `celery worker` with `--include tests.execution.slowtask`; the product never imports it.
"""

import time
from pathlib import Path

from celery import shared_task


@shared_task(name="tests.slow")
def slow(folder: str, name: str, seconds: float) -> None:
    """Write `<name>.start` (the time it began), sleep, then write `<name>.end`."""
    Path(folder, f"{name}.start").write_text(repr(time.time()))
    time.sleep(seconds)
    Path(folder, f"{name}.end").write_text(repr(time.time()))
