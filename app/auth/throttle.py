"""Sign-in throttling per account name and per client address, kept in the database.

Every attempt is first counted as a failure, in one short transaction that locks the two keys'
rows (`claim`); only then is the password checked, outside any transaction. So parallel attempts
in several web processes cannot all slip past the count. Once a key has LOGIN_*_FAILURES failures
within LOGIN_WINDOW_SECONDS of each other, it is locked for LOGIN_BASE_DELAY_SECONDS, doubling with
each further failure up to LOGIN_MAX_DELAY_SECONDS; attempts while it is locked are refused
without checking the password. A right password (`succeeded`) clears the account's count and takes
its own attempt off the address's count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import delete, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from app.extensions import db
from app.models import LoginThrottle, utcnow

ACCOUNT = "account"
ADDRESS = "address"


@dataclass(frozen=True)
class Claim:
    """The verdict on one attempt: refused for `retry_after` seconds, or counted and allowed."""

    keys: dict[str, str]
    retry_after: int = 0
    locked: dict[str, int] = field(default_factory=dict)  # kind -> seconds this attempt set

    @property
    def allowed(self) -> bool:
        return self.retry_after == 0


def keys_for(username: str, address: str) -> dict[str, str]:
    """The two throttle keys of an attempt (names compared case-insensitively, as LDAP does)."""
    return {ACCOUNT: f"account:{username.lower()[:64]}", ADDRESS: f"address:{address[:64]}"}


def _threshold(kind: str) -> int:
    name = "LOGIN_ACCOUNT_FAILURES" if kind == ACCOUNT else "LOGIN_ADDRESS_FAILURES"
    return max(int(current_app.config[name]), 1)


def delay_seconds(failures: int, threshold: int) -> int:
    """The lock after `failures` failures: the base, doubled per failure past the threshold, capped."""
    cfg = current_app.config
    cap = int(cfg["LOGIN_MAX_DELAY_SECONDS"])
    steps = min(failures - threshold, 32)
    return min(int(cfg["LOGIN_BASE_DELAY_SECONDS"]) * 2**steps, cap)


def _ensure_rows(keys: list[str], now: datetime) -> None:
    """Insert the keys' rows unless they exist (the write also serialises SQLite's writers)."""
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    rows = [{"key": k, "failures": 0, "last_failure_at": now} for k in keys]
    db.session.execute(dialect.insert(LoginThrottle).values(rows).on_conflict_do_nothing())


def _locked_rows(keys: list[str]) -> dict[str, LoginThrottle]:
    query = (
        select(LoginThrottle)
        .where(LoginThrottle.key.in_(keys))
        .order_by(LoginThrottle.key)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return {row.key: row for row in db.session.scalars(query)}


def _remaining(row: LoginThrottle, now: datetime) -> int:
    if row.locked_until is None or row.locked_until <= now:
        return 0
    return max(math.ceil((row.locked_until - now).total_seconds()), 1)


def _count_failure(row: LoginThrottle, kind: str, now: datetime) -> int:
    """Add one failure to the row; the seconds of the lock this sets, or 0."""
    window = timedelta(seconds=int(current_app.config["LOGIN_WINDOW_SECONDS"]))
    if now - row.last_failure_at > window:
        row.failures = 0
    row.failures += 1
    row.last_failure_at = now
    threshold = _threshold(kind)
    if row.failures < threshold:
        return 0
    seconds = delay_seconds(row.failures, threshold)
    row.locked_until = now + timedelta(seconds=seconds)
    return seconds


def claim(username: str, address: str) -> Claim:
    """Refuse the attempt while either key is locked, or count it as a failure now; commits."""
    now = utcnow()
    keys = keys_for(username, address)
    _ensure_rows(sorted(keys.values()), now)
    rows = _locked_rows(sorted(keys.values()))
    wait = max(_remaining(rows[key], now) for key in keys.values())
    if wait:
        db.session.commit()
        return Claim(keys, retry_after=wait)
    locked = {kind: _count_failure(rows[key], kind, now) for kind, key in keys.items()}
    db.session.commit()
    _forget_quiet_keys(now)
    return Claim(keys, locked={kind: s for kind, s in locked.items() if s})


def succeeded(attempt: Claim) -> None:
    """The password was right: the account starts again from zero, the address forgets this try."""
    db.session.execute(delete(LoginThrottle).where(LoginThrottle.key == attempt.keys[ACCOUNT]))
    row = _locked_rows([attempt.keys[ADDRESS]]).get(attempt.keys[ADDRESS])
    if row is not None:
        row.failures = max(row.failures - 1, 0)
        if row.failures < _threshold(ADDRESS):
            row.locked_until = None
    db.session.commit()


def _forget_quiet_keys(now: datetime, limit: int = 100) -> None:
    """Delete rows that count for nothing (last failure older than the window, no lock), in a
    transaction of their own that skips rows another attempt holds (no lock waits, no deadlock)."""
    cutoff = now - timedelta(seconds=int(current_app.config["LOGIN_WINDOW_SECONDS"]))
    quiet = (
        select(LoginThrottle.key)
        .where(
            LoginThrottle.last_failure_at < cutoff,
            or_(LoginThrottle.locked_until.is_(None), LoginThrottle.locked_until < now),
        )
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    gone = delete(LoginThrottle).where(LoginThrottle.key.in_(quiet))
    db.session.execute(gone.execution_options(synchronize_session=False))
    db.session.commit()
