"""How the hot path groups its writes: one transaction per hop, and what happens when a hop fails.

These run the service in this process (no worker): the recording enqueue stands in for Celery, the lab
and the database are real.
"""

import threading
from datetime import timedelta

import pytest
from sqlalchemy import event, select, update

from app.execution import service, vault
from app.execution.machine import phases
from app.execution.machine.state import lock_deployment
from app.execution.worker import execute
from app.execution.worker import sessions as sessions_module
from app.extensions import db
from app.handover import drift, lease
from app.models import Deployment, DeploymentLease, DeploymentStep, NodeAction, StepRun, utcnow
from app.remote import errors
from app.remote.runner import NodeSession
from app.remote.sessions import SessionCache
from app.steps import Phase, RunOptions
from tests.execution.harness import (
    LAB_PASSWORD,
    LAB_USER,
    Recorded,
    events_of,
    make_user,
    seed_deployment,
)


class Statements:
    """Counts the SQL statements sent while active, by their first words."""

    def __init__(self) -> None:
        self.full: list[str] = []

    def __enter__(self):
        event.listen(db.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc) -> None:
        event.remove(db.engine, "before_cursor_execute", self._record)

    def _record(self, _conn, _cursor, statement, *_args) -> None:
        self.full.append(" ".join(statement.split()))

    @property
    def seen(self) -> list[str]:
        """Each statement's first four words."""
        return [" ".join(s.split()[:4]) for s in self.full]

    def locks(self, table: str) -> list[int]:
        """Indexes of the statements that lock `table`'s rows: writes, and reads FOR UPDATE."""
        writes = (f"UPDATE {table} ", f"INSERT INTO {table} ")
        return [
            i
            for i, s in enumerate(self.full)
            if s.startswith(writes) or s.endswith(f"FOR UPDATE OF {table}")
        ]

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


def test_the_worker_that_closes_a_phase_runs_the_next_phases_first_action(exec_ctx, lab):
    deployment_id = seed_deployment(lab, "exec-test", nodes=["node1", "node2"])
    queue = Recorded()
    run_id = service.start_step_run(deployment_id, "exec_step", None, queue).id
    first, second = queue.actions  # the request queued the detect phase for the workers
    queue.actions.clear()
    assert service.execute_action(first, queue) == "pending"

    with Statements() as sql:
        assert service.execute_action(second, queue) == "pending"  # closes detect, runs an apply

    # node1's apply was inserted claimed, with its node.started, in the transaction that started
    # the phase: no claim UPDATE before its script; node2's went to the broker, unclaimed.
    updates = [s for s in sql.touching("node_actions") if s.startswith("UPDATE")]
    assert len(updates) == 3  # claim and end of node2's detect, end of node1's apply
    applies = db.session.scalars(
        select(NodeAction).where(NodeAction.step_run_id == run_id, NodeAction.phase == "apply")
    ).all()
    kept, other = sorted(applies, key=lambda a: a.node_name)
    assert (kept.node_name, kept.status, kept.try_count, kept.progress) == (
        "node1", "succeeded", 1, 100,
    )  # fmt: skip
    assert queue.actions == [other.id] and _status(NodeAction, other.id) == "queued"
    events = [(e.kind, e.node_name) for e in events_of(deployment_id)]
    started = events.index(("phase.started", None), 3)
    assert events[started : started + 2] == [("phase.started", None), ("node.started", "node1")]
    phase_started, node_started = events_of(deployment_id)[started : started + 2]
    assert phase_started.created_at == node_started.created_at  # one transaction

    # node2's apply closes the phase, and its worker runs node1's verify then node2's is queued
    assert service.execute_action(queue.actions.pop(), queue) == "pending"
    assert service.execute_action(queue.actions.pop(), queue) == "done"
    assert not queue.actions and not queue.advances
    assert _status(StepRun, run_id) == "succeeded"


def test_an_advance_task_runs_the_first_action_of_the_phase_it_starts(exec_ctx, lab, monkeypatch):
    deployment_id = seed_deployment(lab, "exec-test", nodes=["node1"])
    queue = Recorded()
    monkeypatch.setattr(phases, "_start_phase", _fails)  # the request's start falls back
    run_id = service.start_step_run(deployment_id, "exec_step", None, queue).id
    monkeypatch.undo()

    # detect, apply, verify: one task runs the three phases, each one's action kept in turn
    assert service.advance_and_run(queue.advances.pop(), queue) == "done"
    assert not queue.actions and not queue.advances
    query = select(NodeAction).where(NodeAction.step_run_id == run_id).order_by(NodeAction.id)
    actions = db.session.scalars(query)
    assert [(a.phase, a.status, a.try_count) for a in actions] == [
        ("detect", "succeeded", 1),
        ("apply", "succeeded", 1),
        ("verify", "succeeded", 1),
    ]
    assert _status(StepRun, run_id) == "succeeded"


def test_a_kept_action_of_a_phase_that_did_not_commit_never_runs(exec_ctx, lab, monkeypatch):
    deployment_id = seed_deployment(lab, "exec-test", nodes=["node1"])
    queue = Recorded()
    run_id = service.start_step_run(deployment_id, "exec_step", None, queue).id
    detect = queue.actions.pop()

    # the detect action closes its phase; starting "apply" (keeping node1's apply) fails
    monkeypatch.setattr(phases, "publish_many", _fails)
    assert service.execute_action(detect, queue) == "closed"

    actions = db.session.scalars(select(NodeAction).where(NodeAction.step_run_id == run_id))
    assert [(a.phase, a.status) for a in actions] == [("detect", "succeeded")]  # apply rolled back
    assert queue.advances == [run_id] and not queue.actions

    monkeypatch.undo()
    assert service.advance_and_run(queue.advances.pop(), queue) == "done"
    assert _status(StepRun, run_id) == "succeeded"


def test_a_kept_action_without_credentials_fails_without_running(exec_ctx, lab, monkeypatch):
    deployment_id = seed_deployment(lab, "exec-test", nodes=["node1"])
    queue = Recorded()
    run_id = service.start_step_run(deployment_id, "exec_step", None, queue).id

    def expired(_deployment_id):
        raise vault.VaultEmpty("No WinRM credentials are held for this deployment.")

    monkeypatch.setattr(vault, "load_secrets", expired)  # gone once detect has its credentials
    assert service.execute_action(queue.actions.pop(), queue) == "needs_attention"

    apply = db.session.scalars(
        select(NodeAction).where(NodeAction.step_run_id == run_id, NodeAction.phase == "apply")
    ).one()
    assert (apply.status, apply.error_category, apply.result) == ("failed", "auth_failed", None)
    finished = [
        e for e in events_of(deployment_id, "node.finished") if e.node_action_id == apply.id
    ]
    assert finished[0].payload["duration"] == 0.0  # its script never started
    assert not queue.actions and not queue.advances


def test_a_cancel_that_came_first_stops_a_phase_from_starting(exec_ctx, lab, monkeypatch):
    deployment_id = seed_deployment(lab, "exec-echo", nodes=["node1"])
    monkeypatch.setattr(phases, "_start_phase", _fails)  # the run is created without a phase
    run_id = service.start_step_run(deployment_id, "exec_echo", None, Recorded()).id
    monkeypatch.undo()
    run, _ = phases._load_run(run_id)
    with db.engine.begin() as conn:  # another request's cancel, after this worker read the run
        conn.execute(update(StepRun).where(StepRun.id == run_id).values(cancel_requested=True))

    assert not phases._claim_phase(run, Phase("echo", "Echo", ()))
    db.session.rollback()
    assert db.session.get(StepRun, run_id).phase is None


def _fails(*_args, **_kwargs):
    raise RuntimeError("simulated failure")


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
    assert db.session.get(StepRun, run_id).options.waited == "later"
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


def test_a_decision_keeps_credentials_only_for_the_run_it_starts(exec_ctx, lab):
    deployment_id = seed_deployment(lab, "exec-echo", nodes=["node1"])
    with db.engine.begin() as conn:  # the step paused, waiting for a decision
        conn.execute(
            update(DeploymentStep)
            .where(DeploymentStep.deployment_id == deployment_id)
            .values(status="needs_attention")
        )
    vault.wipe(deployment_id)
    queue = Recorded()

    with pytest.raises(service.StepBlocked, match="choose Retry"):  # Echo retries every node
        service.resolve_pause(
            deployment_id, "exec_echo", "retry_failed", "", None, None, queue,
            credentials=(LAB_USER, "refused-password"),
        )  # fmt: skip
    assert vault.secret_names(deployment_id) == frozenset()

    with Statements() as sql:
        run = service.resolve_pause(
            deployment_id, "exec_echo", "retry", "", None, None, queue,
            credentials=(LAB_USER, LAB_PASSWORD),
        )  # fmt: skip
    vault_write = sql.locks("credentials")[0]
    assert (
        sql.locks("deployments")[0] < vault_write
    )  # the lock order of a finishing worker (it wipes the vault)
    assert vault.load_secrets(deployment_id)[1][vault.WINRM_PASSWORD] == LAB_PASSWORD
    assert run.options.decision == "retry" and queue.actions


class BrokerDown(Recorded):
    """An Enqueue whose broker fails on every action sent."""

    def action(self, action_id: int, countdown: float = 0) -> None:
        raise ConnectionError("simulated: the broker is down")


def test_a_kept_action_still_runs_when_sending_the_others_fails(exec_ctx, lab, monkeypatch):
    deployment_id = seed_deployment(lab, "exec-echo", nodes=["node1", "node2"])
    queue = BrokerDown()
    monkeypatch.setattr(phases, "_start_phase", _fails)  # the request's start falls back
    run_id = service.start_step_run(deployment_id, "exec_echo", None, queue).id
    monkeypatch.undo()

    assert service.advance_and_run(queue.advances.pop(), queue) == "pending"

    actions = db.session.scalars(
        select(NodeAction).where(NodeAction.step_run_id == run_id).order_by(NodeAction.id)
    )
    # node1's ran; node2's stays queued for the reaper to send again
    assert [(a.node_name, a.status) for a in actions] == [
        ("node1", "succeeded"),
        ("node2", "queued"),
    ]


def test_a_stopping_worker_keeps_no_action(exec_ctx, lab, monkeypatch):
    deployment_id = seed_deployment(lab, "exec-echo", nodes=["node1"])
    queue = Recorded()
    monkeypatch.setattr(phases, "_start_phase", _fails)
    run_id = service.start_step_run(deployment_id, "exec_echo", None, queue).id
    monkeypatch.undo()
    monkeypatch.setattr(sessions_module.STOPPING, "is_set", lambda: True)  # warm shutdown began

    assert service.advance_and_run(queue.advances.pop(), queue) == "phase-started"

    action = db.session.scalars(select(NodeAction).where(NodeAction.step_run_id == run_id)).one()
    assert queue.actions == [action.id] and _status(NodeAction, action.id) == "queued"


def test_resume_keeps_the_credentials_even_with_nothing_to_verify(exec_ctx, lab):
    deployment_id = seed_deployment(lab, "exec-echo", nodes=["node1"])
    vault.wipe(deployment_id)  # a take-over wiped the previous driver's credentials

    with Statements() as sql:
        assert drift.start(deployment_id, None, Recorded(), (LAB_USER, LAB_PASSWORD)) is None

    vault_write = sql.locks("credentials")[0]
    assert sql.locks("deployments")[0] < vault_write  # lock, then vault
    assert vault.load_secrets(deployment_id)[1][vault.WINRM_PASSWORD] == LAB_PASSWORD


def test_a_new_run_is_inserted_with_its_first_phase(exec_ctx, lab):
    deployment_id = seed_deployment(lab, "exec-echo", nodes=["node1"])
    with Statements() as sql:
        run = service.start_step_run(deployment_id, "exec_echo", None, Recorded())

    run_writes = [s for s in sql.touching("step_runs") if s.startswith(("INSERT", "UPDATE"))]
    assert run_writes == ["INSERT INTO step_runs (deployment_id,"]  # no UPDATE for the phase
    db.session.expire_all()
    stored = db.session.get(StepRun, run.id)
    assert (stored.status, stored.phase, stored.started_at is not None) == ("running", "echo", True)
    started = events_of(deployment_id, "step.started")[0]
    assert started.step_run_id == run.id  # named once the run had its id


def test_a_new_run_that_finishes_at_once_is_inserted_finished(exec_ctx, lab):
    # Every node excluded from the run's view: the step has nothing to do and decides at once.
    deployment_id = seed_deployment(lab, "exec-echo", nodes=["node1"])
    options = RunOptions(nodes=("no-such-node",))
    run = service.start_step_run(deployment_id, "exec_echo", None, Recorded(), options)

    db.session.expire_all()
    stored = db.session.get(StepRun, run.id)
    assert stored.status in ("succeeded", "failed") and stored.finished_at is not None
    kinds = [e.kind for e in events_of(deployment_id)]
    assert kinds[0] == "step.started" and "step.finished" in kinds
    assert events_of(deployment_id, "step.started")[0].step_run_id == run.id


def _deployment_lock_statements(lab) -> Statements:
    deployment_id = seed_deployment(lab, "exec-echo", nodes=["node1"])
    with Statements() as sql:
        lock_deployment(deployment_id)
    db.session.rollback()
    return sql


@pytest.mark.postgres
def test_the_deployment_lock_is_one_statement_on_postgresql(exec_ctx, lab):
    sql = _deployment_lock_statements(lab)  # the fresh read takes the row lock
    assert len(sql.full) == 1 and sql.full[0].endswith("FOR UPDATE OF deployments")


def test_on_sqlite_the_deployment_lock_writes_before_it_reads(exec_ctx, lab):
    if db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's way to the lock; PostgreSQL's is the test above")
    sql = _deployment_lock_statements(lab)  # no row locks: a write takes the database's lock
    assert [s.split()[0] for s in sql.full] == ["UPDATE", "SELECT"]
    assert sql.locks("deployments") == [0]


def test_node_started_is_written_while_the_pipeline_starts(exec_ctx, lab, monkeypatch):
    deployment_id = seed_deployment(lab, "exec-echo-two", nodes=["node1"])
    sessions, queue = SessionCache(), Recorded()
    begun, written = threading.Event(), threading.Event()
    seen_by_begin, seen_by_write = [], []
    begin, publish = NodeSession._begin, execute.publish_many

    def slow_begin(session, *args):  # the node answers only once the event is written
        begun.set()
        seen_by_begin.append(written.wait(5))
        return begin(session, *args)

    def recording_publish(deployment_id, items, **kwargs):
        starting = any(i["kind"] == "node.started" for i in items)
        if starting:  # written while the pipeline starts, not before it
            seen_by_write.append(begun.wait(5))
        events = publish(deployment_id, items, **kwargs)
        if starting:
            written.set()
        return events

    monkeypatch.setattr(NodeSession, "_begin", slow_begin)
    monkeypatch.setattr(execute, "publish_many", recording_publish)
    try:
        for step_key in ("exec_echo", "exec_echo_later"):  # a pool to open, then an open one
            begun.clear()
            written.clear()
            service.start_step_run(deployment_id, step_key, None, queue)
            assert execute.execute_action(queue.actions.pop(), queue, sessions) == "done"
    finally:
        sessions.close_all()

    assert seen_by_write == [True, True] and seen_by_begin == [True, True]
    kinds = [e.kind for e in events_of(deployment_id) if e.kind.startswith("node.")]
    assert kinds == ["node.started", "node.finished"] * 2


def test_a_pipeline_that_never_started_still_has_its_start_before_its_end(
    exec_ctx, lab, monkeypatch
):
    deployment_id = seed_deployment(lab, "exec-echo-two", nodes=["node1"])
    sessions, queue = SessionCache(), Recorded()
    try:
        service.start_step_run(deployment_id, "exec_echo", None, queue)
        assert execute.execute_action(queue.actions.pop(), queue, sessions) == "done"

        def refused(*_args):
            raise errors.make(errors.SCRIPT_ERROR, "The node refused the pipeline.")

        monkeypatch.setattr(NodeSession, "_begin", refused)  # the pool is open: no early notice
        service.start_step_run(deployment_id, "exec_echo_later", None, queue)
        assert execute.execute_action(queue.actions.pop(), queue, sessions) == "needs_attention"
    finally:
        sessions.close_all()

    nodes = [(e.kind, e.payload.get("status")) for e in events_of(deployment_id) if e.node_name]
    assert nodes[-2:] == [("node.started", None), ("node.finished", "failed")]
