"""Test-only, imported by a worker with `--include tests.execution.crashstep`: once the file named by
AMSW_TEST_CRASH_TRIGGER exists, the consumer's next (re)start fails with an error Celery cannot
recover from, as kombu's did on a Redis restart with celery 5.7.0 ("Unrecoverable error")."""

import os

from celery import bootsteps

from app.execution.worker.main import celery


class CrashOnRestart(bootsteps.StartStopStep):
    def start(self, consumer) -> None:
        trigger = os.environ.get("AMSW_TEST_CRASH_TRIGGER")
        if trigger and os.path.exists(trigger):
            raise RuntimeError("test: the consumer cannot restart")


celery.steps["consumer"].add(CrashOnRestart)
