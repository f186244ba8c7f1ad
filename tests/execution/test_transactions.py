"""How the hot path groups its writes: one transaction per hop, and what happens when a hop fails.

These run the service in this process (no worker): the recording enqueue stands in for Celery, the lab
and the database are real.
"""

from datetime import timedelta

import pytest
from sqlalchemy import event, select, update

from app.execution import phases, service, vault
from app.execution.state import lock_deployment
from app.extensions import db
from app.handover import lease
from app.models import Deployment, DeploymentLease, DeploymentStep, NodeAction, StepRun, utcnow
from app.wizard.engine import Phase
from tests.execution.harness import (
    LAB_PASSWORD,
    LAB_USER,
    events_of,
    make_user,
    seed_deployment,
)


class Recorded:
    """An Enqueue that keeps what would have gone to Celery."""

    def __init__(self) -> None:
        self.actions: list[int] = []
        self.advances: list[int] = []

    def advance(self, run_id: int, countdown: float = 0) -> None:
        self.advances.append(run_id)

    def action(self, action_id: int, countdown: float = 0) -> None:
        self.actions.append(action_id)


class Statements:
    """Counts the SQL statements sent while active, by their first words."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __enter__(self):
        event.listen(db.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc) -> None:
        event.remove(db.engine, "before_cursor_execute", self._record)

    def _record(self, _conn, _cursor, statement, *_args) -> None:
        self.seen.append(" ".join(statement.split()[:4]))

    def touching(self, table: str) -> list[str]:
        return [s for s in self.seen if f" {table}" in s]


def _status(model, row_id: int) -> str:
    db.session.expire_all()
    status = db.session.get(model, row_id).status
    db.session.commit()
    return status


def test_start_commits_the_run_and_its_first_phase_together(exec_ctx, lab):
    deployment_id = seed_deployment(lab, "exec-echo", nodes=["node1"])
    queue = Recorded()
    run = service.start_step_run(deployment_id, "exec_echo", None, queue)

    events = events_of(deployment_id)
    assert [e.kind for e in events] == ["step.started", "phase.started"]
    assert events[0].created_at == events[1].created_at  # one transaction, one timestamp
    assert queue.actions and not queue.advances
    assert _status(StepRun, run.id) == "running"


def test_action_end_phase_end_and_outcome_commit_together(exec_ctx, lab):
    deployment_id = seed_deployment(lab, "exec-echo", nodes=["node1"])
    queue = Recorded()
    run_id = service.start_step_run(deployment_id, "exec_echo", None, queue).id

    assert service.execute_action(queue.actions.pop(), queue) == "done"

    events = events_of(deployment_id)
    tail = events[-4:]  # a one-step guide: the step's end also completes the deployment
    assert [e.kind for e in tail] == [
        "node.finished",
        "phase.finished",
        "step.finished",
        "deployment.completed",
    ]
    assert len({e.created_at for e in tail}) == 1
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert _status(StepRun, run_id) == "succeeded"
    assert not queue.advances  # nothing left for a worker


def test_a_failing_advance_keeps_the_action_result_and_hands_the_run_to_a_worker(
    exec_ctx, lab, monkeypatch
):
    deployment_id = seed_deployment(lab, "exec-echo", nodes=["node1"])
    queue = Recorded()
    run_id = service.start_step_run(deployment_id, "exec_echo", None, queue).id
    action_id = queue.actions.pop()

    def broken(*_args, **_kwargs):
        raise RuntimeError("simulated failure while recording the outcome")

    monkeypatch.setattr(phases, "finish", broken)
    assert service.execute_action(action_id, queue) == "closed"

    assert _status(NodeAction, action_id) == "succeeded"
    kinds = [e.kind for e in events_of(deployment_id)]
    assert kinds[-2:] == ["node.finished", "phase.finished"]
    assert queue.advances == [run_id]
    assert _status(StepRun, run_id) == "running"

    monkeypatch.undo()
    assert service.advance(queue.advances.pop(), queue) == "done"
    assert _status(StepRun, run_id) == "succeeded"
    assert [e.kind for e in events_of(deployment_id)][-2:] == [
        "step.finished",
        "deployment.completed",
    ]


def test_a_start_whose_first_phase_fails_is_queued_for_a_worker(exec_ctx, lab, monkeypatch):
    deployment_id = seed_deployment(lab, "exec-echo", nodes=["node1"])
    vault.wipe(deployment_id)
    queue = Recorded()

    def broken(*_args, **_kwargs):
        raise RuntimeError("simulated failure while starting the phase")

    monkeypatch.setattr(phases, "_start_phase", broken)
    run = service.start_step_run(
        deployment_id, "exec_echo", None, queue, credentials=(LAB_USER, LAB_PASSWORD)
    )

    assert queue.advances == [run.id] and not queue.actions
    assert [e.kind for e in events_of(deployment_id)] == ["step.started"]
    assert vault.load_secrets(deployment_id)[1][vault.WINRM_PASSWORD] == LAB_PASSWORD
    db.session.commit()

    monkeypatch.undo()
    assert service.advance(queue.advances.pop(), queue) == "phase-started"
    assert queue.actions


def test_a_refused_start_keeps_neither_run_nor_credentials(exec_ctx, lab):
    deployment_id = seed_deployment(lab, "exec-echo", nodes=["node1"])
    queue = Recorded()
    service.start_step_run(deployment_id, "exec_echo", None, queue)
    vault.wipe(deployment_id)

    with pytest.raises(service.StepBlocked, match="still in progress"):
        service.start_step_run(
            deployment_id, "exec_echo", None, queue, credentials=(LAB_USER, "other-password")
        )

    assert vault.secret_names(deployment_id) == frozenset()
    runs = db.session.scalars(select(StepRun).where(StepRun.deployment_id == deployment_id))
    assert len(runs.all()) == 1


def test_the_vault_is_read_once_per_transaction(exec_ctx, lab):
    deployment_id = seed_deployment(lab, "exec-echo", nodes=["node1"])
    with Statements() as sql:
        vault.store_credentials(deployment_id, LAB_USER, "fresh-password", commit=False)
        names = vault.secret_names(deployment_id)
        user, secrets = vault.load_secrets(deployment_id)
    assert names == {vault.WINRM_PASSWORD} and user == LAB_USER
    assert secrets[vault.WINRM_PASSWORD] == "fresh-password"
    assert len([s for s in sql.touching("credentials") if s.startswith("SELECT")]) == 1

    db.session.commit()  # a new transaction reads the row again
    with Statements() as sql:
        assert vault.load_secrets(deployment_id)[1][vault.WINRM_PASSWORD] == "fresh-password"
    assert len(sql.touching("credentials")) == 1

    vault.wipe(deployment_id, commit=False)
    assert vault.secret_names(deployment_id) == frozenset()
    db.session.rollback()
    assert vault.secret_names(deployment_id) == {vault.WINRM_PASSWORD}


def test_a_fresh_lease_is_not_rewritten_but_a_stale_one_is(exec_ctx):
    make_user("driver")
    make_user("other")
    from app.models import Deployment, User

    ids = {u.username: u.id for u in db.session.scalars(select(User))}
    deployment = Deployment(
        name="lease", domain_fqdn="corp.example.com", guide_key="exec-echo", guide_version="1",
        current_step="exec_echo", created_by_id=ids["driver"],
    )  # fmt: skip
    db.session.add(deployment)
    db.session.commit()

    assert lease.acquire(deployment.id, ids["driver"])
    with Statements() as sql:
        assert lease.acquire(deployment.id, ids["driver"])
    assert sql.touching("deployment_leases")  # read...
    assert not [s for s in sql.touching("deployment_leases") if not s.startswith("SELECT")]

    def set_expiry(seconds: float):
        with db.engine.begin() as conn:
            conn.execute(
                DeploymentLease.__table__.update().values(
                    expires_at=utcnow() + timedelta(seconds=seconds)
                )
            )
        db.session.expire_all()

    set_expiry(10)  # under half of its time left: renewed
    with Statements() as sql:
        assert lease.acquire(deployment.id, ids["driver"])
    assert any(s.startswith("UPDATE") for s in sql.touching("deployment_leases"))
    db.session.expire_all()
    renewed = db.session.get(DeploymentLease, deployment.id)
    assert renewed.expires_at - utcnow() > timedelta(seconds=60)

    assert not lease.acquire(deployment.id, ids["other"])  # live and not theirs
    set_expiry(-1)  # expired: the next driver takes it
    held = db.session.get(DeploymentLease, deployment.id)  # as a request holds it (flask.g)
    assert lease.acquire(deployment.id, ids["other"])
    # Rewritten outside the session: the row the request holds reads the new holder, not the old.
    assert lease.state(deployment.id, db.session.get(User, ids["other"])).mine
    assert held.holder_id == ids["other"]
    db.session.expire_all()
    assert db.session.get(DeploymentLease, deployment.id).holder_id == ids["other"]
    assert not lease.acquire(deployment.id, ids["driver"])


def test_a_wait_locks_the_run_before_the_deployment(exec_ctx, lab):
    # Lock order everywhere: run, actions, deployment, step records. A phase that waits first
    # updates its run (locking the row), then the event locks the deployment row.
    deployment_id = seed_deployment(lab, "exec-echo", nodes=["node1"])
    run_id = service.start_step_run(deployment_id, "exec_echo", None, Recorded()).id
    run, _ = phases.lock_run(run_id)
    queue = Recorded()
    phase = Phase("later", "Later", (), wait_before=5)
    with Statements() as seen:
        assert phases._wait(run, phase, queue) == "waiting"
    tables = [s.split()[1] for s in seen.seen if s.startswith("UPDATE")]
    assert tables == ["step_runs", "deployments"]
    assert queue.advances == [run_id]
    assert events_of(deployment_id, "phase.waiting")[-1].payload["seconds"] == 5
    db.session.expire_all()
    assert db.session.get(StepRun, run_id).options["waited"] == "later"
    db.session.rollback()


def test_the_deployment_lock_reads_step_records_afresh(exec_ctx, lab):
    # Two tabs: the request read the step records before another request changed them; the checks
    # made under the lock must see the change, not the request's earlier read.
    deployment_id = seed_deployment(lab, "exec-echo", nodes=["node1"])
    before = db.session.get(Deployment, deployment_id)
    assert before.step("exec_echo").status == "not_started"
    with db.engine.begin() as conn:
        conn.execute(
            update(DeploymentStep)
            .where(DeploymentStep.deployment_id == deployment_id)
            .values(status="skipped")
        )
    locked = lock_deployment(deployment_id)
    assert locked is before  # the same object, refreshed
    assert locked.step("exec_echo").status == "skipped"
    db.session.rollback()
