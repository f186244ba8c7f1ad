"""The Celery binding, as in Flask's examples/celery: every task runs inside an app context."""

import os

from celery import Celery, Task, bootsteps
from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
    worker_shutting_down,
)
from flask import Flask

from app.execution.broker import TRANSPORT
from app.execution.outbox import Flusher
from app.execution.worker.redaction import install_log_redaction
from app.execution.worker.sessions import SESSIONS, STOPPING

REAP_TASK = "app.execution.tasks.reap"


def celery_init_app(app: Flask) -> Celery:
    """Create the Celery app from app.config['CELERY'] and store it in app.extensions['celery']."""

    class FlaskTask(Task):
        def __call__(self, *args: object, **kwargs: object) -> object:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(_settings(app))
    celery_app.steps["worker"].add(StopKeeping)
    celery_app.flask_app = app  # for the worker's signal handlers (the outbox flusher)
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app


def _settings(app: Flask) -> dict:
    """app.config['CELERY'] plus the queue, the embedded broker's options and the reaper schedule."""
    settings = dict(app.config.get("CELERY", {}))
    if str(settings.get("broker_url", "")).startswith("filesystem"):
        settings["broker_transport"] = TRANSPORT
        settings["broker_transport_options"] = _filesystem_options(app, settings)
    if queue := app.config.get("CELERY_QUEUE"):
        settings["task_default_queue"] = queue
    interval = float(app.config.get("REAPER_INTERVAL_SECONDS", 15))
    settings.setdefault("beat_schedule", {"reap": {"task": REAP_TASK, "schedule": interval}})
    settings.setdefault("include", ["app.execution.tasks"])
    settings.setdefault("beat_scheduler", "app.execution.beat:SingleBeatScheduler")
    return settings


def _filesystem_options(app: Flask, settings: dict) -> dict:
    """Folders created, the fallback polling interval (puts wake consumers at once), optional keeping."""
    options = dict(settings.get("broker_transport_options") or {})
    options.setdefault("polling_interval", app.config.get("BROKER_POLL_SECONDS", 0.05))
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        if key in options:
            os.makedirs(options[key], exist_ok=True)
    if app.config.get("BROKER_KEEP_PROCESSED") and "processed_folder" in options:
        options["store_processed"] = True  # debugging/tests: keep consumed messages for inspection
    return options


class StopKeeping(bootsteps.StartStopStep):
    """However the worker stops (Ctrl-C, SIGTERM, or an unrecoverable error, which sends no
    worker_shutting_down), STOPPING is set before the pool waits for its running tasks: they
    finish, but this worker keeps no next phase's action and claims no new one (tasks.py)."""

    requires = ("celery.worker.components:Pool",)  # started after the pool, so stopped before it

    def stop(self, worker) -> None:
        STOPPING.set()

    def shutdown(self, worker) -> None:
        STOPPING.set()

    def terminate(self, worker) -> None:
        STOPPING.set()


@worker_shutting_down.connect
def _stop_keeping(**_kwargs) -> None:
    """A stopping worker finishes what it runs but keeps no new phase's action (KeepFirst)."""
    STOPPING.set()


_FLUSHERS: list[Flusher] = []


@worker_ready.connect
def _start_flusher(sender=None, **_kwargs) -> None:
    """Tasks that waited for the broker are sent by the workers once it is back (outbox.py)."""
    flask_app = getattr(getattr(sender, "app", None), "flask_app", None)
    if flask_app is not None and not _FLUSHERS:
        _FLUSHERS.append(Flusher(flask_app).start())


@worker_shutdown.connect
@worker_process_shutdown.connect
def _close_sessions(**_kwargs) -> None:
    """Close pooled WinRM sessions (and stop the outbox flusher) when a worker stops."""
    for flusher in _FLUSHERS:
        flusher.stop()
    SESSIONS.close_all()


@after_setup_logger.connect
@after_setup_task_logger.connect
def _redact_logs(logger=None, **_kwargs) -> None:
    """Mask running actions' secrets in every worker log line; keep protocol dumps out of DEBUG."""
    install_log_redaction(logger)
