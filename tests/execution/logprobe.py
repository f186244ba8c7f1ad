"""Test-only, imported by a worker with `--include tests.execution.logprobe`: a task that holds a
deployment's secrets as a running action does, and logs each one every way a worker can."""

import logging

from celery import shared_task
from celery.utils.log import get_task_logger

from app.execution import vault
from app.execution.worker.redaction import REDACTOR

DONE = "logprobe: done"
CHANNELS = ("app-args", "app-message", "task-logger", "celery", "pypsrp", "stdout", "exception")


@shared_task(name="tests.execution.logprobe.log_secrets", ignore_result=True)
def log_secrets(deployment_id: int) -> None:
    """Log every secret held for the deployment through each channel, then DONE."""
    _, secrets = vault.load_secrets(deployment_id)
    held = list(secrets.values())
    REDACTOR.hold(held)  # as execute._run does while an action's script runs
    try:
        for secret in held:
            _log_everywhere(secret)
    finally:
        REDACTOR.release(held)
    logging.getLogger("app.execution").warning(DONE)


def _log_everywhere(secret: str) -> None:
    app_log = logging.getLogger("app.execution.worker.execute")
    app_log.warning("app-args: %s", secret)
    app_log.warning(f"app-message: {secret}")
    get_task_logger(__name__).warning("task-logger: %s", secret)
    logging.getLogger("celery.worker").warning("celery: %s", secret)
    logging.getLogger("pypsrp.client").info("pypsrp: %s", secret)
    print(f"stdout: {secret}")  # Celery redirects a task's stdout to its log
    try:
        raise RuntimeError(f"exception: {secret}")  # in the traceback, not in the message
    except RuntimeError:
        app_log.exception("the action crashed")
