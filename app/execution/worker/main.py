"""Entry point for `celery -A app.execution.worker.main worker` and `celery -A app.execution.worker.main beat`."""

from app import create_app

flask_app = create_app()
celery = flask_app.extensions["celery"]

import app.execution.tasks  # noqa: E402,F401 - register the tasks with this Celery app
