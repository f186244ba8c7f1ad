"""A test-only Celery task that sleeps and notes when it began and ended (tests of the broker).

Included in a test `celery worker` with `--include tests.execution.slowtask`; the product never imports it.
"""

import os
import time
from pathlib import Path

from celery import shared_task


@shared_task(name="tests.slow")
def slow(folder: str, name: str, seconds: float) -> None:
    """Write `<name>.start` (the time it began), sleep, then write `<name>.end`."""
    _note(Path(folder, f"{name}.start"), time.time())
    time.sleep(seconds)
    _note(Path(folder, f"{name}.end"), time.time())


def _note(path: Path, when: float) -> None:
    """Written whole, then renamed into place: a reader never sees the file empty."""
    temp = path.with_suffix(".tmp")
    temp.write_text(repr(when))
    os.replace(temp, path)
