"""The execution state machine's table (app.execution.machine.transitions): complete, one-way, and
the only place the engine writes a run's or an action's status."""

import ast
import re
from datetime import timedelta
from pathlib import Path
from typing import get_args

import pytest

from app.execution.machine.transitions import (
    ACTION,
    ACTION_END,
    RUN,
    RUN_AFTER_FINISH,
    RUN_END,
    STEP_AFTER,
)
from app.extensions import db
from app.models import NodeAction, StepRun, utcnow
from app.models.deployment import STEP_STATUSES
from app.models.execution import ACTION_STATUSES, RUN_STATUSES
from app.steps import FinishStatus
from tests.execution.harness import running_run, seed_deployment

ROOT = Path(__file__).resolve().parents[2]
ACTION_ENDED = {"succeeded", "failed", "cancelled", "interrupted"}
ENDED = ACTION_ENDED | {"passed"}  # a run's attempt may pass and leave the step to the next one


def reachable(machine, starts):
    seen, todo = set(starts), list(starts)
    while todo:
        for after in machine.successors(todo.pop()):
            if after not in seen:
                seen.add(after)
                todo.append(after)
    return seen


def test_every_status_is_reachable_and_the_endings_are_final():
    assert reachable(RUN, [RUN.initial]) == set(RUN_STATUSES)
    assert reachable(ACTION, [ACTION.initial]) == set(ACTION_STATUSES)
    assert RUN.terminal == ENDED
    assert ACTION.terminal == ACTION_ENDED
    for machine in (RUN, ACTION):
        for status in machine.terminal:
            assert machine.successors(status) == frozenset()


def test_the_ending_maps_name_moves_that_reach_that_ending():
    assert set(RUN_END) == ENDED and set(STEP_AFTER) == ENDED
    for status, move in RUN_END.items():
        assert RUN.move(move).target == status
    for status, move in ACTION_END.items():
        assert ACTION.move(move).target == status and ACTION.move(move).sources == ("running",)
    assert set(STEP_AFTER.values()) <= set(STEP_STATUSES)
    assert STEP_AFTER["succeeded"] == "done"
    assert {STEP_AFTER[s] for s in ENDED - {"succeeded"}} == {"needs_attention"}
    assert RUN_AFTER_FINISH == {"done": "succeeded", "passed": "passed"}
    assert set(RUN_AFTER_FINISH) < set(get_args(FinishStatus))  # any other Finish fails the run


def test_an_unknown_move_is_refused():
    with pytest.raises(LookupError, match="no move 'resurrect'"):
        RUN.update("resurrect")


def test_the_statement_is_a_compare_and_set_from_the_moves_sources():
    sql = str(ACTION.update("requeue", NodeAction.id == 5, error_category="timeout"))
    assert re.search(r"WHERE node_actions\.status IN \(__\[POSTCOMPILE_status_1\]\)", sql)
    assert "SET status=:status, error_category=:error_category" in sql
    assert ACTION.values("requeue") == {"status": "queued"}
    assert ACTION.values("beat", {"heartbeat_at": 1}) == {"heartbeat_at": 1}  # keeps the status


def test_a_move_that_lost_the_race_changes_nothing(exec_ctx, lab):
    """The reaper's interrupt after the worker's own end: the second move finds no running row."""
    deployment_id = seed_deployment(lab)
    run_row, actions = running_run(
        deployment_id, utcnow() - timedelta(minutes=5), {"node1": utcnow()}, "apply", "exec_apply"
    )
    run, action_id = run_row.id, actions["node1"]
    ended = ACTION.update("succeed", NodeAction.id == action_id, finished_at=utcnow())
    assert db.session.execute(ended).rowcount == 1
    late = ACTION.update("interrupt", NodeAction.id == action_id, error_message="late")
    assert db.session.execute(late).rowcount == 0
    db.session.commit()
    action = db.session.get(NodeAction, action_id)
    assert (action.status, action.error_message) == ("succeeded", None)
    finished = RUN.update("succeed", StepRun.id == run)
    assert db.session.execute(finished).rowcount == 1
    assert db.session.execute(RUN.update("cancel", StepRun.id == run)).rowcount == 0
    db.session.commit()
    assert db.session.get(StepRun, run).status == "succeeded"


def _status_writes(path: Path) -> list[str]:
    """`status=<literal>` keyword arguments and `.status = <literal>` of a run/action in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        literal = isinstance(node, ast.keyword) and isinstance(node.value, ast.Constant)
        if literal and node.arg == "status" and node.value.value in RUN_STATUSES:
            found.append(f"{path.name}:{node.lineno}")
    return found


def test_no_engine_module_writes_a_status_but_the_table():
    """Every status write of runs and actions goes through transitions (deployment and step-record
    statuses are the deployment's, not the machine's, and are not keywords)."""
    engine = [
        *(ROOT / "app" / "execution").rglob("*.py"),
        *(ROOT / "app" / "handover").rglob("*.py"),
    ]
    offenders = [w for p in engine if p.name != "transitions.py" for w in _status_writes(p)]
    assert offenders == []
