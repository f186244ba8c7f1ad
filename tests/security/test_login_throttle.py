"""Sign-in throttling per account and per client address, kept in the database, audited; and an
unknown user name costs the same time as a known one."""

import statistics
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.auth import throttle
from app.extensions import db
from app.models import AuditRecord, LoginThrottle, User, utcnow
from app.models import user as user_model
from config import Config
from tests.conftest import PASSWORD, ROOT, csrf_token

WRONG = "not the password at all"


PRODUCT_HASHING = (
    "PASSWORD_HASH_MEMORY_KIB",
    "PASSWORD_HASH_TIME_COST",
    "PASSWORD_HASH_PARALLELISM",
)


class CountingHasher:
    """The app's Argon2 hasher, counting its verifications."""

    def __init__(self, real) -> None:
        self.real, self.verified = real, 0

    def hash(self, password: str) -> str:
        return self.real.hash(password)

    def verify(self, hashed: str, password: str) -> bool:
        self.verified += 1
        return self.real.verify(hashed, password)


def count_verifications(app, monkeypatch) -> CountingHasher:
    """The app's hasher for its current settings, counting its verifications from now on."""
    with app.app_context():
        hasher = CountingHasher(user_model._hasher())
    monkeypatch.setattr(user_model, "_hasher", lambda: hasher)
    return hasher


@pytest.fixture
def checks(app, monkeypatch):
    """Counts every Argon2 verification (a real password check or the throwaway one)."""
    return count_verifications(app, monkeypatch)


@pytest.fixture
def clock(monkeypatch):
    """Move the throttle's clock forward: clock(seconds)."""
    offset = {"s": 0.0}
    monkeypatch.setattr(throttle, "utcnow", lambda: utcnow() + timedelta(seconds=offset["s"]))

    def advance(seconds: float) -> None:
        offset["s"] += seconds

    return advance


def attempt(client, username: str, password: str, token: str, address: str = "127.0.0.1"):
    data = {"username": username, "password": password, "csrf_token": token}
    return client.post("/login", data=data, environ_base={"REMOTE_ADDR": address})


def signed_in(client) -> bool:
    return client.get("/").status_code == 200


def audit_actions(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(AuditRecord.action).order_by(AuditRecord.seq)))


def test_a_burst_of_wrong_passwords_is_mostly_refused_unchecked(app, client, make_user, checks):
    make_user("gina", "operator")
    token = csrf_token(client)
    answers = [attempt(client, "gina", WRONG, token) for _ in range(60)]
    refused = [r for r in answers if r.status_code == 429]
    assert checks.verified <= 8, checks  # 5 before the lock, then one per expired delay at most
    assert len(refused) >= 52
    assert len(refused) + checks.verified == 60
    page = refused[-1].get_data(as_text=True)
    assert "Too many failed sign-ins: try again in" in page
    assert refused[-1].headers["Retry-After"].isdigit()


def test_parallel_attempts_cannot_slip_past_the_count(app, make_user, checks):
    make_user("hugo", "operator")
    clients = [app.test_client() for _ in range(12)]
    tokens = [csrf_token(c) for c in clients]
    codes: list[int] = []
    start = threading.Barrier(len(clients))

    def run(client, token):
        start.wait()
        codes.append(attempt(client, "hugo", WRONG, token).status_code)

    threads = [
        threading.Thread(target=run, args=pair) for pair in zip(clients, tokens, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(codes) == 12
    assert checks.verified == 5, codes  # exactly the threshold, however the requests interleave
    assert codes.count(429) == 7


def test_right_password_is_refused_while_locked_then_works(app, client, make_user, clock, checks):
    make_user("ivy", "operator")
    token = csrf_token(client)
    for _ in range(5):
        assert attempt(client, "ivy", WRONG, token).status_code == 200
    counted = checks.verified
    locked = attempt(client, "ivy", PASSWORD, token)
    assert locked.status_code == 429
    assert "try again in 2 s" in locked.get_data(as_text=True)
    assert checks.verified == counted  # the password was not even checked
    assert not signed_in(client)
    clock(3)
    assert attempt(client, "ivy", PASSWORD, token).status_code == 302
    assert signed_in(client)


def test_the_delay_doubles_and_is_capped(app, client, make_user, clock, monkeypatch):
    monkeypatch.setitem(app.config, "LOGIN_MAX_DELAY_SECONDS", 16)
    make_user("jack", "operator")
    token = csrf_token(client)
    for _ in range(4):
        attempt(client, "jack", WRONG, token)
    delays = []
    for _ in range(6):
        page = attempt(client, "jack", WRONG, token).get_data(as_text=True)
        delays.append(int(page.split("try again in ")[1].split(" s")[0]))
        clock(delays[-1] + 1)
    assert delays == [2, 4, 8, 16, 16, 16]


def test_success_resets_the_account_counter(app, client, make_user):
    make_user("kate", "operator")
    token = csrf_token(client)
    for _ in range(4):
        attempt(client, "kate", WRONG, token)
    assert attempt(client, "kate", PASSWORD, token).status_code == 302
    other = app.test_client()
    other_token = csrf_token(other)
    for _ in range(4):  # four more: not locked, as the count started again
        assert attempt(other, "kate", WRONG, other_token).status_code == 200
    with app.app_context():
        row = db.session.get(LoginThrottle, "account:kate")
        assert row.failures == 4 and row.locked_until is None


def test_the_account_count_ignores_the_case_of_the_name(app, client, make_user):
    make_user("lena", "operator")
    token = csrf_token(client)
    for i, name in enumerate(("lena", "LENA", "Lena", "lEna", "leNA")):
        attempt(client, name, WRONG, token, address=f"10.1.0.{i}")
    assert attempt(client, "lena", PASSWORD, token, address="10.2.0.1").status_code == 429


def test_one_address_trying_many_names_is_throttled(app, client, make_user, monkeypatch, checks):
    monkeypatch.setitem(app.config, "LOGIN_ADDRESS_FAILURES", 6)
    make_user("mona", "operator")
    token = csrf_token(client)
    for i in range(6):
        assert attempt(client, f"guess{i}", WRONG, token, "10.0.0.66").status_code == 200
    refused = attempt(client, "mona", PASSWORD, token, "10.0.0.66")
    assert refused.status_code == 429 and checks.verified == 6
    assert attempt(client, "mona", PASSWORD, token, "10.0.0.67").status_code == 302


def test_throttling_is_audited(app, client, make_user):
    make_user("nina", "operator")
    token = csrf_token(client)
    for _ in range(6):
        attempt(client, "nina", WRONG, token)
    actions = audit_actions(app)
    assert actions.count("login.failed") == 5
    assert actions.count("login.locked") == 1 and actions.count("login.throttled") == 1
    with app.app_context():
        locked = db.session.scalar(select(AuditRecord).where(AuditRecord.action == "login.locked"))
        throttled = db.session.scalar(
            select(AuditRecord).where(AuditRecord.action == "login.throttled")
        )
    assert locked.target == "account:nina" and locked.details == {"scope": "account", "seconds": 2}
    assert locked.ip == "127.0.0.1" and locked.actor_name == "nina"
    assert throttled.target == "nina" and throttled.details["retry_after"] in (1, 2)


def test_the_count_is_shared_by_separate_processes(app, client, make_user, database_url):
    """Another process (another gunicorn worker) fails five times; this one sees the lock."""
    make_user("olga", "operator")
    script = f"""
import os, re
os.environ["AMSW_INSTANCE_DIR"] = {str(app.config["INSTANCE_DIR"])!r}
from app import create_app
from config import TestConfig
app = create_app(TestConfig, {{"SQLALCHEMY_DATABASE_URI": {database_url!r}}})
client = app.test_client()
token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', client.get("/login").text)[1]
for _ in range(5):
    client.post("/login", data={{"username": "olga", "password": "x", "csrf_token": token}})
"""
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=120)
    refused = attempt(client, "olga", PASSWORD, csrf_token(client))
    assert refused.status_code == 429


def _median_seconds(app, names) -> list[float]:
    """One timed wrong-password attempt per name, each from a fresh client."""
    times = []
    for name in names:
        client = app.test_client()
        token = csrf_token(client)
        started = time.perf_counter()
        response = attempt(client, name, WRONG, token)
        times.append(time.perf_counter() - started)
        assert response.status_code == 200
    return times


def test_unknown_and_known_names_take_the_same_time(app, make_user, monkeypatch):
    monkeypatch.setitem(app.config, "LOGIN_ACCOUNT_FAILURES", 1000)
    monkeypatch.setitem(app.config, "LOGIN_ADDRESS_FAILURES", 1000)
    for name in PRODUCT_HASHING:  # the product's Argon2 cost, not the suite's cheap one
        monkeypatch.setitem(app.config, name, getattr(Config, name))
    checks = count_verifications(app, monkeypatch)
    assert checks.real.memory_cost == 65536  # what an attacker's timing would have to beat
    make_user("pia", "operator")
    with app.app_context():  # a directory account (no local password), LDAP off
        db.session.add(User(username="quinn", password_hash="!ldap", role="operator"))
        db.session.commit()
    _median_seconds(app, ["warm-up", "pia"])  # the throwaway hash is made on first use
    known, unknown, directory = [], [], []
    for i in range(9):  # interleaved, so machine load hits all three alike
        known += _median_seconds(app, ["pia"])
        unknown += _median_seconds(app, [f"nobody{i}"])
        directory += _median_seconds(app, ["quinn"])
    ratio = statistics.median(unknown) / statistics.median(known)
    assert 0.5 <= ratio <= 2, (statistics.median(known), statistics.median(unknown))
    assert 0.5 <= statistics.median(directory) / statistics.median(known) <= 2
    assert checks.verified == 2 + 27  # one Argon2 verification per attempt, whoever the name
