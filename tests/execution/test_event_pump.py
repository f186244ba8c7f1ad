"""EventPump while the database is unreachable: what it keeps, in what order, and what it counts as
lost (a fake write stands in for the database), and which errors mean an outage."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from flask import Flask
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from app.execution import outage
from app.execution.worker.pump import EventPump
from tests.conftest import wait_for


def _unreachable() -> OperationalError:
    """What SQLAlchemy raises when PostgreSQL refuses the connection."""
    return OperationalError("INSERT", {}, psycopg.OperationalError("connection refused"))


class FakeWrite:
    """A write that fails with a lost connection while `down` is set (or `failures` more times),
    recording every batch it accepted."""

    def __init__(self, failures: int = 0, down: bool = False) -> None:
        self.failures, self.down = failures, threading.Event()
        if down:
            self.down.set()
        self.batches: list[list[str]] = []
        self.tries = 0

    def __call__(self, records: list[dict]) -> None:
        self.tries += 1
        if self.down.is_set() or self.failures > 0:
            self.failures -= 1
            raise _unreachable()
        self.batches.append([r["text"] for r in records])

    @property
    def written(self) -> list[str]:
        return [text for batch in self.batches for text in batch]


def _pump(write, **config) -> EventPump:
    app = Flask(__name__)
    app.config.update(config)
    return EventPump(app, 1, 1, {"node": "node1"}, ["s3cret"], write=write)


def _lines(count: int) -> list[str]:
    return [f"line {n:04d}" for n in range(1, count + 1)]


def test_batches_that_failed_are_written_later_in_order_and_once():
    write = FakeWrite(failures=3)
    with _pump(write) as pump:
        for text in _lines(50):
            pump.put({"stream": "output", "text": text})
            time.sleep(0.005)  # some records arrive while the first writes fail
    assert write.written == _lines(50)
    assert write.tries >= 4
    assert pump.lost == 0


def test_records_beyond_the_buffer_are_counted_as_lost():
    write = FakeWrite(down=True)
    with _pump(write, EVENT_BUFFER_RECORDS=10) as pump:
        for text in _lines(25):
            pump.put({"stream": "output", "text": text})
        # A second try comes after a back-off in which the pump took in everything queued.
        wait_for(lambda: write.tries >= 2, 5, message="a second try")
        write.down.clear()  # the database is back
    assert write.written == _lines(10)
    assert pump.lost == 15


def test_what_is_still_unwritten_when_the_flush_time_is_over_is_lost():
    write = FakeWrite(down=True)
    started = time.monotonic()
    with _pump(write, DB_OUTAGE_SECONDS=0.5) as pump:
        for text in _lines(7):
            pump.put({"stream": "output", "text": text})
    assert time.monotonic() - started < 5
    assert write.written == []
    assert pump.lost == 7


def test_a_batch_the_database_refuses_for_another_reason_is_lost_not_retried():
    rejected = []

    def write(records):
        if not rejected:
            rejected.extend(r["text"] for r in records)
            raise IntegrityError("INSERT", {}, Exception("bad row"))
        written.extend(r["text"] for r in records)

    written: list[str] = []
    with _pump(write) as pump:
        pump.put({"stream": "output", "text": "first"})
        wait_for(lambda: rejected, 5, message="the first batch to be refused")
        pump.put({"stream": "output", "text": "second"})
    assert rejected == ["first"] and written == ["second"]
    assert pump.lost == 1


def test_secrets_are_masked_in_records_kept_for_later():
    write = FakeWrite(failures=2)
    with _pump(write) as pump:
        pump.put({"stream": "output", "text": "password is s3cret"})
    assert write.written == ["password is ********"]


@pytest.mark.parametrize(
    ("error", "lost"),
    [
        (_unreachable(), True),
        (OperationalError("SELECT", {}, psycopg.errors.AdminShutdown("terminating")), True),
        (OperationalError("SELECT", {}, psycopg.errors.CannotConnectNow("starting up")), True),
        (OperationalError("SELECT", {}, psycopg.errors.DeadlockDetected("deadlock")), False),
        (IntegrityError("INSERT", {}, psycopg.errors.UniqueViolation("dup")), False),
        (DBAPIError("SELECT", {}, Exception("gone"), connection_invalidated=True), True),
        (ValueError("not a database error"), False),
    ],
)
def test_which_errors_mean_the_database_was_unreachable(error, lost):
    assert outage.connection_lost(error) is lost


def test_work_is_tried_again_while_the_database_is_unreachable(ctx):
    tries = []

    def work():
        tries.append(time.monotonic())
        if len(tries) < 3:
            raise _unreachable()
        return "done"

    assert outage.retry_while_unreachable(work, 5, "a test") == "done"
    assert len(tries) == 3
    assert tries[2] - tries[1] > tries[1] - tries[0]  # the back-off grows


@pytest.mark.parametrize(
    "error",
    [IntegrityError("INSERT", {}, psycopg.errors.UniqueViolation("dup")), _unreachable()],
)
def test_other_errors_and_a_long_outage_are_raised(ctx, error):
    tries = []

    def work():
        tries.append(1)
        raise error

    started = time.monotonic()
    with pytest.raises(type(error)):
        outage.retry_while_unreachable(work, 0.5, "a test")
    assert time.monotonic() - started < 2
    if isinstance(error, IntegrityError):
        assert tries == [1]  # not tried again
    else:
        assert len(tries) > 1
