"""Starting a step run: check that it may start, create the next attempt, start its first phase."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from sqlalchemy import bindparam, func, select

from app.events.publish import held_events, publish_many
from app.execution import vault
from app.execution.dispatch import Enqueue, default_enqueue
from app.execution.machine.phases import advance
from app.execution.machine.state import ACTIVE_RUN, StepBlocked, lock_deployment
from app.execution.machine.transitions import RUN
from app.extensions import db
from app.guides import get_guide
from app.models import Deployment, StepRun
from app.steps import RunOptions, Step, blocked_message, blocking_step

log = logging.getLogger(__name__)


def _check_can_start(deployment: Deployment, step: Step) -> int:
    """Raise StepBlocked unless the step may start; returns the new run's attempt number."""
    guide = get_guide(deployment.guide_key)
    if deployment.status == "aborted":
        raise StepBlocked("This deployment was aborted; start a new one.")
    if not step.runnable:
        raise StepBlocked(f"'{step.title}' has nothing to run.")
    active_key, last_attempt = _runs_now(deployment.id, step.key)
    if active_key is not None:
        raise StepBlocked(f"A run of '{guide.step(active_key).title}' is still in progress.")
    statuses = {s.step_key: s.status for s in deployment.steps}
    if (blocker := blocking_step(guide, step.key, statuses)) is not None:
        raise StepBlocked(blocked_message(blocker, step))
    if not deployment.active_nodes:
        raise StepBlocked("Every node is excluded; there is nothing to run on.")
    if (problem := vault.refusal(deployment.id)) is not None:  # none held, or a node refused them
        raise StepBlocked(problem)
    return (last_attempt or 0) + 1


def _runs_now(deployment_id: int, step_key: str) -> tuple[str | None, int | None]:
    """(step key of the deployment's active run or None, the step's latest attempt) in one query."""
    params = {"deployment_id": deployment_id, "the_step_key": step_key}
    row = db.session.execute(_runs_now_query(), params).one()
    return row[0], row[1]


@functools.cache
def _runs_now_query():
    of_deployment = StepRun.deployment_id == bindparam("deployment_id")
    active = select(StepRun.step_key).where(of_deployment, StepRun.status.in_(ACTIVE_RUN)).limit(1)
    last = select(func.max(StepRun.attempt)).where(
        of_deployment, StepRun.step_key == bindparam("the_step_key")
    )
    return select(active.scalar_subquery(), last.scalar_subquery())


def _create_run(
    deployment: Deployment, step: Step, attempt: int, actor_id: int | None, options: RunOptions
) -> StepRun:
    record = deployment.step(step.key)
    inputs = {k: v for k, v in (record.inputs or {}).items() if k not in step.secret_fields}
    run = StepRun(
        deployment_id=deployment.id,
        step_key=step.key,
        attempt=attempt,
        status=RUN.initial,
        actor_id=actor_id,
        inputs=inputs,
        options=options,
    )
    db.session.add(run)
    record.status = "in_progress"
    record.updated_by_id = actor_id
    deployment.status = "in_progress"
    deployment.current_step = step.key
    return run  # inserted once its first phase or its outcome is known (update_active_run)


def _step_or_blocked(deployment: Deployment, step_key: str) -> tuple[Step, int]:
    """The step and its next attempt number, if it exists and may start now; else StepBlocked."""
    try:
        step = get_guide(deployment.guide_key).step(step_key)
    except KeyError:
        raise StepBlocked(f"Unknown step {step_key!r}.") from None
    return step, _check_can_start(deployment, step)


def start_step_run(
    deployment_id: int,
    step_key: str,
    actor_id: int | None,
    enqueue: Enqueue | None = None,
    options: RunOptions | None = None,
    *,
    credentials: tuple[str, str] | None = None,
    fallback: bool = True,
    prepare: Callable[[Deployment], None] | None = None,
) -> StepRun:
    """Create the next attempt of a step and start its first phase, in one transaction.

    credentials: (user name, password) to keep in the vault, committed only if the run starts.
    Starting the first phase here saves a broker round trip. Should it fail, the run is created
    alone (fallback) and a worker advances it. When the step may not start, StepBlocked says why and
    the transaction is rolled back. Callers already inside a transaction with other work (a
    verification chain on a worker) pass fallback=False: nothing is rolled back, errors are theirs.
    prepare: called with the locked deployment before the checks, in the same transaction (the
    wizard saves the step's inputs there: kept only if the run starts); may raise StepBlocked."""
    enqueue = enqueue or default_enqueue()
    start = functools.partial(_start, prepare=prepare)
    try:
        return start(deployment_id, step_key, actor_id, enqueue, options, credentials, True)
    except StepBlocked:
        if fallback:
            db.session.rollback()  # nothing half-saved, refused credentials not kept
        raise
    except Exception:
        if not fallback:
            raise
        log.exception("Could not start the first phase of %s here; queued for a worker", step_key)
        db.session.rollback()
        return start(deployment_id, step_key, actor_id, enqueue, options, credentials, False)


def _start(
    deployment_id: int,
    step_key: str,
    actor_id: int | None,
    enqueue: Enqueue,
    options: RunOptions | None,
    credentials: tuple[str, str] | None,
    advance_here: bool,
    prepare: Callable[[Deployment], None] | None = None,
) -> StepRun:
    """Lock the deployment, check, create the run; then start its first phase here (advance_here)
    or commit the run alone and queue its first advance."""
    deployment = lock_deployment(deployment_id, credentials=credentials, owner_id=actor_id)
    if prepare is not None:
        prepare(deployment)
    step, attempt = _step_or_blocked(deployment, step_key)
    run = _create_run(deployment, step, attempt, actor_id, options or RunOptions())
    payload = {"attempt": run.attempt, "title": step.title, "decision": run.options.decision}
    if run.options.nodes:
        payload["nodes"] = list(run.options.nodes)

    def started() -> dict:  # the run's id exists once it is inserted, before the events are
        return {
            "kind": "step.started",
            "payload": payload,
            "step_key": step.key,
            "step_run_id": run.id,
            "actor_id": actor_id,
        }

    if not advance_here:
        db.session.flush()
        publish_many(deployment_id, [started()])
        enqueue.advance(run.id)
        return run
    with held_events(deployment_id, [started]):  # committed with the first phase
        advance(run.id, enqueue, idle=True, loaded=(run, deployment))  # no actions yet
    return run
