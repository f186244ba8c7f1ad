"""Sends the broker refuses wait in the database and go out, in order, once it answers."""

from __future__ import annotations

import kombu.exceptions
import pytest

from app.execution import outbox, service
from app.execution.dispatch import CeleryEnqueue
from app.extensions import db
from app.models import NodeAction, TaskOutbox
from tests.execution.harness import seed_deployment


class FakeBroker:
    """Stands in for the Celery app's send_task: refuses while `up` is False."""

    def __init__(self) -> None:
        self.up = False
        self.sent: list[tuple[str, tuple, float | None]] = []

    def send_task(self, name: str, args: tuple, countdown: float | None = None) -> None:
        if not self.up:
            raise kombu.exceptions.OperationalError("Error 111 connecting to redis:6379")
        self.sent.append((name, args, countdown))


@pytest.fixture
def broker(exec_ctx):
    real = exec_ctx.extensions["celery"]
    fake = exec_ctx.extensions["celery"] = FakeBroker()
    yield fake
    exec_ctx.extensions["celery"] = real


def test_a_refused_send_waits_and_goes_out_in_order_once_the_broker_answers(broker):
    assert outbox.send("task.a", (1,)) is False
    assert outbox.send("task.b", (2,), countdown=600) is False
    assert outbox.waiting()[0] == 2
    assert outbox.flush() == 0  # still down: nothing sent, the attempt counted
    rows = db.session.scalars(db.select(TaskOutbox).order_by(TaskOutbox.id))
    assert [r.attempts for r in rows] == [2, 1]
    broker.up = True
    assert outbox.flush() == 2
    assert [(name, args) for name, args, _ in broker.sent] == [("task.a", (1,)), ("task.b", (2,))]
    assert broker.sent[0][2] is None and 590 < broker.sent[1][2] <= 600  # the countdown left
    assert outbox.waiting() == (0, None)


def test_a_step_started_while_the_broker_is_down_is_queued_not_refused(broker, lab):
    deployment_id = seed_deployment(lab)
    run = service.start_step_run(deployment_id, "exec_step", None, CeleryEnqueue())
    actions = db.session.scalars(db.select(NodeAction.id).where(NodeAction.step_run_id == run.id))
    waiting = [tuple(r.args) for r in db.session.scalars(db.select(TaskOutbox))]
    assert sorted(waiting) == sorted((a,) for a in actions) and len(waiting) == 3
    broker.up = True
    assert outbox.flush() == 3
    assert {args for _, args, _ in broker.sent} == set(waiting)
