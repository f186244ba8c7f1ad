"""Advancing a step run: ask the step for its next phase, start it, and hand completed phases on.

- a new phase starts only if the run's `phase` is still the one the caller saw (compare-and-set);
- a phase's completion is handed to `advance` by exactly one caller (`advanced_phase` compare-and-set).
"""

from __future__ import annotations

import functools
import logging

from sqlalchemy import Select, bindparam, or_, select, update
from sqlalchemy.orm import joinedload

from app.context import run_view
from app.events.publish import held_events, publish, publish_many
from app.execution import vault
from app.execution.dispatch import Enqueue, Keeper, default_enqueue
from app.execution.machine import modes
from app.execution.machine.finishing import finish, finish_cancelled
from app.execution.machine.state import ACTIVE_RUN, PENDING_ACTION, pending_count, update_active_run
from app.execution.machine.transitions import ACTION, claim_new
from app.extensions import db
from app.guides import get_guide
from app.models import Credential, Deployment, Node, NodeAction, StepRun
from app.steps import ActionResult, Finish, Phase, RunView, Step

log = logging.getLogger(__name__)

MAX_EMPTY_PHASES = 50


def _result(action: NodeAction) -> ActionResult:
    data = (action.result or {}).get("data") if isinstance(action.result, dict) else None
    return ActionResult(
        node=action.node_name,
        script=action.script,
        status=action.status,
        data=data,
        error_category=action.error_category,
        error_message=action.error_message,
    )


@functools.cache
def _actions_query() -> Select:
    return (
        select(NodeAction)
        .where(NodeAction.step_run_id == bindparam("run_id"))
        .order_by(NodeAction.id)
        .execution_options(populate_existing=True)  # statuses as the database has them now
    )


def run_actions(run_id: int) -> list[NodeAction]:
    """Every action of one attempt, oldest first."""
    return list(db.session.scalars(_actions_query(), {"run_id": run_id}))


def _results(rows: list[NodeAction]) -> dict[str, dict[str, ActionResult]]:
    """Results of this attempt's completed phases, keyed by phase then node."""
    phases: dict[str, dict[str, ActionResult]] = {}
    pending: set[str] = set()
    for action in rows:
        if action.status in PENDING_ACTION:
            pending.add(action.phase)
        phases.setdefault(action.phase, {})[action.node_name] = _result(action)
    return {name: results for name, results in phases.items() if name not in pending}


def build_view(
    run: StepRun, deployment: Deployment, actions: list[NodeAction] | None = None
) -> RunView:
    """The RunView for `run`: saved inputs of every step, this run's snapshot, its nodes and results.

    actions: the run's actions (run_actions) when the caller has just read them."""
    view = run_view(deployment, run.step_key, vault.secret_names(deployment.id))
    view.inputs = dict(run.inputs or {})
    view.all_inputs[run.step_key] = dict(run.inputs or {})
    view.options = run.options
    view.all_nodes = tuple(n.name for n in view.nodes)
    if run.options.nodes:
        view.nodes = tuple(n for n in view.nodes if n.name in run.options.nodes)
    if run.phase is None:  # no phase yet: no actions
        view.results = {}
    else:
        view.results = _results(actions if actions is not None else run_actions(run.id))
    return view


def _decide(step: Step, view: RunView) -> Phase | Finish:
    try:
        mode = modes.of(view.options.mode)  # e.g. a read-only drift check (app.handover.drift)
        return mode.decide(step, view) if mode is not None else step.advance(view)
    except Exception as exc:
        log.exception("Step %s failed to decide", step.key)
        return Finish(
            "needs_attention",
            f"The step could not decide what to do next: {type(exc).__name__}: {exc}",
        )


def advance(
    run_id: int,
    enqueue: Enqueue | None = None,
    *,
    idle: bool = False,
    loaded: tuple[StepRun, Deployment] | None = None,
    actions: list[NodeAction] | None = None,
) -> str:
    """Ask the step for its next phase and queue it, or record its outcome. Returns what happened.

    idle: the caller knows no action of the run is pending (it closed the phase, or the run is new).
    loaded: the run and its deployment as this transaction already read them (lock_run, a new run).
    actions: the run's actions as this transaction already read them (close_phase).
    """
    enqueue = enqueue or default_enqueue()
    row = loaded or _load_run(run_id)
    if row is None or row[0].status not in ACTIVE_RUN:
        return "inactive"
    run, deployment = row
    if run.cancel_requested:
        return finish_cancelled(run) if pending_count(run.id) == 0 else "cancelling"
    if not idle and pending_count(run.id):
        return "pending"
    step = get_guide(deployment.guide_key).step(run.step_key)
    view = build_view(run, deployment, actions)
    for _ in range(MAX_EMPTY_PHASES):
        decision = _decide(step, view)
        if isinstance(decision, Finish):
            return finish(run, deployment, decision)
        if decision.name in view.results:
            twice = f"The step asked for phase '{decision.name}' twice."
            return finish(run, deployment, Finish("needs_attention", twice))
        if not decision.actions:
            view.results[decision.name] = {}
            continue
        if decision.wait_before and run.options.waited != decision.name:
            return _wait(run, decision, enqueue)
        return _start_phase(run, deployment, decision, enqueue)
    too_many = Finish("needs_attention", "The step produced too many empty phases.")
    return finish(run, deployment, too_many)


@functools.cache
def _run_query(lock: bool) -> Select:
    """Built once per process (hot path: every action's end); `run_id` is bound per call."""
    query = (
        select(StepRun, Deployment, Credential)
        .join(Deployment, Deployment.id == StepRun.deployment_id)
        .outerjoin(Credential, Credential.deployment_id == StepRun.deployment_id)
        .where(StepRun.id == bindparam("run_id"))
        .options(joinedload(Deployment.steps), joinedload(Deployment.nodes))
    )
    if lock:
        query = query.with_for_update(of=StepRun).execution_options(populate_existing=True)
    return query


def _load_run(run_id: int, *, lock: bool = False) -> tuple[StepRun, Deployment] | None:
    """The run and its deployment, with what build_view reads: the deployment's step records and
    nodes (joined: a few dozen rows at most) and its vault row."""
    row = db.session.execute(_run_query(lock), {"run_id": run_id}).unique().first()
    if row is None:
        return None
    vault.prime(row[1].id, row[2])
    return row[0], row[1]


def _wait(run: StepRun, phase: Phase, enqueue: Enqueue) -> str:
    """Note that the run waits before `phase` (compare-and-set, locking the run row before the
    event locks the deployment's) and queue its advance for when the wait is over."""
    options = run.options.but(waited=phase.name)
    if not update_active_run(run, "start", {"options": options}):
        return "inactive"  # the run ended meanwhile; the caller's transaction ends as it would
    payload = {"phase": phase.name, "title": phase.title, "seconds": phase.wait_before}
    publish(run.deployment_id, "phase.waiting", payload, step_key=run.step_key, step_run_id=run.id)
    enqueue.advance(run.id, countdown=phase.wait_before)
    return "waiting"


def _claim_phase(run: StepRun, phase: Phase) -> bool:
    """Compare-and-set the run's phase from the one this caller saw (`run` is updated to match),
    unless a cancel got there first (it then ended the run itself, or ends it with its actions)."""
    seen = StepRun.phase.is_(None) if run.phase is None else StepRun.phase == run.phase
    not_cancelled = StepRun.cancel_requested.is_(False)
    return update_active_run(run, "start", {"phase": phase.name}, seen, not_cancelled)


def _start_phase(run: StepRun, deployment: Deployment, phase: Phase, enqueue: Enqueue) -> str:
    nodes = {n.name: n for n in deployment.nodes}
    unknown = [a.node for a in phase.actions if a.node not in nodes]
    if unknown:
        message = f"Phase '{phase.name}' names unknown nodes {unknown}."
        return finish(run, deployment, Finish("needs_attention", message))
    if not _claim_phase(run, phase):
        return "lost-race"  # nothing written here; the caller's transaction ends as it would
    actions = [_new_action(run, nodes[a.node], phase, a) for a in phase.actions]
    keeper = enqueue if isinstance(enqueue, Keeper) and enqueue.accepting else None
    if keeper is not None:  # a worker: the first action is inserted claimed, for itself
        claim_new(actions[0])
    db.session.add_all(actions)
    db.session.flush()
    payload = {
        "phase": phase.name,
        "title": phase.title,
        "changes_state": phase.changes_state,
        "actions": [
            {"id": a.id, "node": a.node_name, "script": a.script, "label": a.label} for a in actions
        ],
    }
    items = [
        {
            "kind": "phase.started",
            "payload": payload,
            "step_key": run.step_key,
            "step_run_id": run.id,
        }
    ]
    if keeper is not None:
        items.append(keeper.keep(actions[0], run, nodes[actions[0].node_name]))
    kept = 1 if keeper is not None else 0

    def send() -> None:  # after the commit, before browsers are told: workers start sooner
        if keeper is not None:
            keeper.committed()
        for entry in payload["actions"][kept:]:  # ids from before the commit: no reload per action
            enqueue.action(entry["id"])

    publish_many(run.deployment_id, items, then=send)
    return "phase-started"


def _new_action(run: StepRun, node: Node, phase: Phase, action) -> NodeAction:
    upload = action.upload and {"source": action.upload[0], "destination": action.upload[1]}
    return NodeAction(
        step_run_id=run.id,
        node_id=node.id,
        node_name=node.name,
        phase=phase.name,
        script=action.script,
        parameters=dict(action.params),
        secret_params=dict(action.secrets),
        label=action.label or None,
        timeout_seconds=action.timeout,
        upload=upload or None,
        status=ACTION.initial,
    )


def after_action(run_id: int, phase: str, enqueue: Enqueue | None = None) -> str:
    """Called when an action of `phase` ended: the caller that completes the phase advances the run."""
    loaded = lock_run(run_id)
    outcome, closing, actions = close_phase(run_id, phase)
    if closing is None:
        db.session.commit()
        return outcome
    with held_events(closing["deployment_id"], [closing]):  # committed with what advance does
        return advance(run_id, enqueue, idle=True, loaded=loaded, actions=actions)


def lock_run(run_id: int) -> tuple[StepRun, Deployment] | None:
    """Lock the run's row and read it (with its deployment) afresh, for `advance(loaded=...)`.

    Callers ending actions of a run serialise on this lock, so the later one sees the other's
    ending. PostgreSQL: SELECT ... FOR UPDATE OF step_runs. SQLite has no row locks: the caller's
    next statement is a write, which takes the database write lock and serialises them the same
    way; what was read before it can only miss a cancel request, which every action's claim and
    the next advance honour. Lock order everywhere: step run, then node actions, then the
    deployment (event sequence)."""
    return _load_run(run_id, lock=True)


@functools.cache
def _close_statement():
    """close_phase's compare-and-set, built once (every action's end runs it)."""
    run_id, phase = bindparam("run_id"), bindparam("the_phase")
    pending = (
        select(NodeAction.id)
        .where(
            NodeAction.step_run_id == run_id,
            NodeAction.phase == phase,
            NodeAction.status.in_(PENDING_ACTION),
        )
        .exists()
    )
    table = StepRun.__table__  # Core UPDATE; the caller's lock_run read the row
    return (
        update(table)
        .where(
            table.c.id == run_id,
            table.c.status.in_(ACTIVE_RUN),
            table.c.phase == phase,
            or_(table.c.advanced_phase.is_(None), table.c.advanced_phase != phase),
            ~pending,
        )
        .values(advanced_phase=phase)
        .returning(table.c.deployment_id, table.c.step_key)
    )


def close_phase(run_id: int, phase: str) -> tuple[str, dict | None, list[NodeAction] | None]:
    """Elect this caller to close `phase` if none of its actions is pending (caller holds lock_run).

    Returns ("closed", the phase.finished event item, also naming its deployment_id, the run's
    actions for advance) for the one elected caller, else ("pending", None, None): an action of the
    phase is still queued or running, or another caller closed it. Nothing is committed here."""
    elected = db.session.execute(_close_statement(), {"run_id": run_id, "the_phase": phase}).first()
    if elected is None:
        return "pending", None, None
    actions = run_actions(run_id)
    item = {
        "kind": "phase.finished",
        "payload": {
            "phase": phase,
            "nodes": {a.node_name: a.status for a in actions if a.phase == phase},
        },
        "step_key": elected.step_key,
        "step_run_id": run_id,
        "deployment_id": elected.deployment_id,
    }
    return "closed", item, actions
