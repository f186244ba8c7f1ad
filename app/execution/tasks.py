"""Celery glue: ids in, a service call out. Never a secret in the arguments."""

from celery import shared_task
from celery.exceptions import Reject

from app.execution import probe, service
from app.execution.worker import reaper
from app.execution.worker.sessions import STOPPING

OPTIONS = {"acks_late": True, "reject_on_worker_lost": True, "ignore_result": True}


@shared_task(**OPTIONS)
def advance_step_run(run_id: int) -> str:
    """Ask the step for its next phase (or outcome); run the phase's first action here."""
    return service.advance_and_run(run_id)


@shared_task(**OPTIONS)
def run_node_action(action_id: int) -> str:
    """Run one vetted script on one node; a stopping worker hands it back to the queue unclaimed."""
    if STOPPING.is_set():
        raise Reject("this worker is stopping", requeue=True)
    return service.execute_action(action_id)


@shared_task(**OPTIONS)
def test_connection(deployment_id: int, node_id: int) -> str:
    """Test connection: the read-only connection probe on one node."""
    return probe.run(deployment_id, node_id)


@shared_task(**OPTIONS)
def reap() -> dict:
    """Periodic sweep: interrupted actions, lost tasks, stalled runs, expired credentials."""
    return reaper.reap()
