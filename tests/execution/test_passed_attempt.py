"""An attempt that passes its part (Finish "passed", e.g. a farm test round) is recorded as passed,
not failed: its step waits for the next attempt, the log says so, and nobody is paged for it."""

import pytest

from app.execution.machine import finishing, modes
from app.extensions import db
from app.models import Deployment, utcnow
from app.steps import Finish
from tests.execution.harness import events_of, running_run, seed_deployment


@pytest.fixture
def notices(monkeypatch):
    heard: list[tuple] = []
    monkeypatch.setattr(modes, "_paused", [lambda *args: heard.append(args)])
    return heard


def _finish(lab, outcome: Finish):
    dep = seed_deployment(lab, "exec-test", nodes=["node1"])
    run, _ = running_run(dep, utcnow())
    deployment = db.session.get(Deployment, dep)
    assert finishing.finish(run, deployment, outcome) == outcome.status
    db.session.commit()
    db.session.expire_all()
    return db.session.get(Deployment, dep), run


def test_a_passed_attempt_waits_for_the_next_one_without_a_pause_notice(exec_ctx, lab, notices):
    deployment, run = _finish(lab, Finish("passed", "Round passed. Next: only node2 in service."))
    assert run.status == "passed" and run.finished_at is not None
    assert run.outcome["status"] == "passed"
    assert deployment.step("exec_step").status == "needs_attention"  # the driver starts the next
    assert deployment.status == "paused"
    finished = events_of(deployment.id, "step.finished")[-1]
    assert finished.payload["status"] == "passed"
    paused = events_of(deployment.id, "step.paused")[-1]
    assert paused.payload == {"reason": run.outcome["summary"], "passed": True}
    assert notices == []


def test_an_attempt_that_needs_a_person_fails_and_pages(exec_ctx, lab, notices):
    deployment, run = _finish(lab, Finish("needs_attention", "The balancer did not answer."))
    assert run.status == "failed"
    assert deployment.step("exec_step").status == "needs_attention"
    paused = events_of(deployment.id, "step.paused")[-1]
    assert "passed" not in paused.payload
    assert notices == [(deployment.id, "exec_step", "The balancer did not answer.")]
