"""The audit trail: logins (failed too), changes and exports are recorded, chained and verifiable."""

import threading

import pytest
from sqlalchemy import text

from app.audit.service import record, verify
from app.extensions import db
from app.models import AuditRecord
from tests.conftest import csrf_token, login
from tests.handover.helpers import deployment, signed_in, user


def _actions(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(db.select(AuditRecord.action).order_by(AuditRecord.seq)))


def test_logins_failed_logins_changes_and_exports_are_recorded(app):
    user(app, "alice", "operator")
    login(app.test_client(), "alice", "wrong password")
    alice = signed_in(app, "alice", "operator")
    dep_id = deployment(app, "alice")
    token = csrf_token(alice, f"/deployments/{dep_id}/history")
    alice.post(f"/deployments/{dep_id}/notes", data={"csrf_token": token, "text": "hello"})
    alice.get(f"/deployments/{dep_id}/export.json")
    actions = _actions(app)
    assert actions[:2] == ["login.failed", "login.succeeded"]
    assert "request.handover.note" in actions and "export.json" in actions
    with app.app_context():
        failed = db.session.scalar(
            db.select(AuditRecord).where(AuditRecord.action == "login.failed")
        )
        assert failed.target == "alice" and "wrong" not in str(failed.details)


def test_chain_verifies_and_the_app_cannot_edit_records(app):
    with app.app_context():
        for i in range(5):
            record("test.append", f"t{i}", {"i": i}, actor_name="tester")
        assert verify() == (5, [])
        row = db.session.scalar(db.select(AuditRecord).where(AuditRecord.seq == 3))
        row.target = "changed"
        with pytest.raises(PermissionError):
            db.session.flush()
        db.session.rollback()
        db.session.delete(db.session.scalar(db.select(AuditRecord).limit(1)))
        with pytest.raises(PermissionError):
            db.session.flush()
        db.session.rollback()


def _tamper(app, sql: str) -> None:
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(text(sql))


@pytest.mark.parametrize(
    ("sql", "seq", "reason"),
    [
        ("UPDATE audit_records SET target = 'forged' WHERE seq = 3", 3, "content does not match"),
        ("DELETE FROM audit_records WHERE seq = 2", 3, "sequence gap"),
    ],
)
def test_flask_audit_verify_names_the_tampered_row(app, sql, seq, reason):
    with app.app_context():
        for i in range(4):
            record("test.append", f"t{i}", actor_name="tester")
        row_id = db.session.scalar(db.select(AuditRecord.id).where(AuditRecord.seq == seq))
    runner = app.test_cli_runner()
    ok = runner.invoke(args=["audit", "verify"])
    assert ok.exit_code == 0 and "4 records verified" in ok.output
    _tamper(app, sql)
    bad = runner.invoke(args=["audit", "verify"])
    assert bad.exit_code == 1
    assert f"TAMPERED row id={row_id} seq={seq}" in bad.output and reason in bad.output


def test_audit_page_is_read_only_for_reviewers(app):
    reviewer = signed_in(app, "rita", "reviewer")
    page = reviewer.get("/audit")
    assert page.status_code == 200 and "login.succeeded" in page.get_data(as_text=True)
    assert "<form" not in page.get_data(as_text=True).split("<main", 1)[1]


def test_a_burst_of_appends_from_many_threads_is_all_recorded_in_one_chain(app):
    """Twenty-four writers at once (a password-spraying burst, say): every record is appended,
    none gives up on contention, and the chain still verifies."""
    writers, each = 24, 5
    start = threading.Barrier(writers)
    failures: list[BaseException] = []

    def write(n: int) -> None:
        with app.app_context():
            start.wait()
            try:
                for i in range(each):
                    record("test.burst", f"writer {n} record {i}", actor_name="burst")
            except BaseException as exc:  # noqa: BLE001 - reported below
                failures.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures, failures[:3]
    with app.app_context():
        targets = db.session.scalars(
            db.select(AuditRecord.target).where(AuditRecord.action == "test.burst")
        ).all()
        assert sorted(targets) == sorted(
            f"writer {n} record {i}" for n in range(writers) for i in range(each)
        )
        checked, problems = verify()
        assert problems == [] and checked >= writers * each
