"""StepRun.options is a typed RunOptions in Python and a JSON object of its set fields in the
database: a stored row round-trips, a key nobody declared is an error, a plain dict is refused."""

import pytest
from sqlalchemy import select, text, update

from app.extensions import db
from app.models import StepRun
from app.steps import RunOptions
from tests.execution.harness import seed_deployment


def _run(deployment_id, options):
    run = StepRun(deployment_id=deployment_id, step_key="exec_step", options=options)
    db.session.add(run)
    db.session.commit()
    return run.id


def test_options_round_trip_through_the_database(exec_ctx, lab):
    deployment_id = seed_deployment(lab)
    options = RunOptions(decision="retry_failed", retry_of=7, nodes=("node2",), fix="restart:node2")
    run_id = _run(deployment_id, options)
    db.session.expire_all()
    assert db.session.get(StepRun, run_id).options == options
    stored = db.session.execute(
        select(StepRun.__table__.c.options).where(StepRun.id == run_id)
    ).scalar_one()
    raw = db.session.execute(text("SELECT options FROM step_runs WHERE id = :id"), {"id": run_id})
    assert "all_nodes" not in str(raw.scalar_one())  # only declared fields are ever written
    assert stored == options  # Core reads go through the same type
    default_id = _run(deployment_id, None)
    db.session.expire_all()
    assert db.session.get(StepRun, default_id).options == RunOptions()


def test_a_plain_dict_is_refused_and_an_unknown_stored_key_is_an_error(exec_ctx, lab):
    deployment_id = seed_deployment(lab)
    run = StepRun(deployment_id=deployment_id, step_key="exec_step", options={"fix": "x"})
    db.session.add(run)
    with pytest.raises(Exception, match="takes RunOptions"):
        db.session.commit()
    db.session.rollback()
    run_id = _run(deployment_id, RunOptions())
    db.session.execute(
        update(StepRun.__table__)
        .where(StepRun.id == run_id)
        .values(options=RunOptions(mode="verify"))
    )
    cast = "CAST(:raw AS JSON)" if db.engine.dialect.name == "postgresql" else ":raw"
    db.session.execute(
        text(f"UPDATE step_runs SET options = {cast} WHERE id = :id"),
        {"raw": '{"mode": "verify", "surprise": 1}', "id": run_id},
    )
    db.session.commit()
    db.session.expire_all()
    with pytest.raises(ValueError, match="Unknown run options: surprise"):
        db.session.get(StepRun, run_id)
