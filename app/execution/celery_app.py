"""The Celery binding, as in Flask's examples/celery: every task runs inside an app context."""

import os

from celery import Celery, Task
from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    worker_process_shutdown,
    worker_shutdown,
)
from flask import Flask

REAP_TASK = "app.execution.tasks.reap"


def celery_init_app(app: Flask) -> Celery:
    """Create the Celery app from app.config['CELERY'] and store it in app.extensions['celery']."""

    class FlaskTask(Task):
        def __call__(self, *args: object, **kwargs: object) -> object:
            with app.app_context():
                return self.run(*args, **kwargs)

    settings = dict(app.config.get("CELERY", {}))
    transport = dict(settings.get("broker_transport_options") or {})
    if str(settings.get("broker_url", "")).startswith("filesystem"):
        transport.setdefault("polling_interval", app.config.get("BROKER_POLL_SECONDS", 0.05))
        for key in ("data_folder_in", "data_folder_out", "processed_folder"):
            if key in transport:
                _makedirs(transport[key])
    if os.environ.get("AMSW_BROKER_KEEP_PROCESSED") and "processed_folder" in transport:
        transport["store_processed"] = (
            True  # debugging/tests: keep consumed messages for inspection
        )
    settings["broker_transport_options"] = transport
    if queue := os.environ.get("AMSW_CELERY_QUEUE") or app.config.get("CELERY_QUEUE"):
        settings["task_default_queue"] = queue
    settings.setdefault(
        "beat_schedule",
        {
            "reap": {
                "task": REAP_TASK,
                "schedule": float(app.config.get("REAPER_INTERVAL_SECONDS", 15)),
            },
        },
    )
    settings.setdefault("include", ["app.execution.tasks"])
    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(settings)
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app


def _makedirs(path: str) -> None:
    os.makedirs(path, exist_ok=True)


@worker_shutdown.connect
@worker_process_shutdown.connect
def _close_sessions(**_kwargs) -> None:
    """Close pooled WinRM sessions when a worker stops."""
    from app.execution.actions import SESSIONS

    SESSIONS.close_all()


@after_setup_logger.connect
@after_setup_task_logger.connect
def _redact_logs(logger=None, **_kwargs) -> None:
    """Mask running actions' secrets in every worker log line; keep protocol dumps out of DEBUG."""
    from app.execution.actions import install_log_redaction

    install_log_redaction(logger)
