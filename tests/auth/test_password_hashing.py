"""Local passwords: Argon2id with the PASSWORD_HASH_* settings, checked when the app is built."""

import logging

import pytest

from app import create_app
from app.models import User
from app.setup import check_password_hashing
from config import Config, TestConfig


def _hash_with(config, overrides=None) -> str:
    app = create_app(config, overrides)
    with app.app_context():
        user = User(username="ida")
        user.set_password("a long enough password")
        return user.password_hash


def test_the_product_hashes_with_rfc_9106s_second_setting():
    assert _hash_with(Config).startswith("$argon2id$v=19$m=65536,t=3,p=4$")


def test_a_hash_keeps_its_setting_and_verifies_after_the_setting_changes():
    strong = _hash_with(Config)
    cheap_app = create_app(TestConfig)
    with cheap_app.app_context():
        user = User(username="ida", password_hash=strong)
        assert user.check_password("a long enough password")
        assert not user.check_password("a long enough passwore")
        user.set_password("another long password")  # a new hash takes the new setting
        assert user.password_hash.startswith("$argon2id$v=19$m=8,t=1,p=1$")


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"PASSWORD_HASH_TIME_COST": 0}, "PASSWORD_HASH_TIME_COST"),
        ({"PASSWORD_HASH_PARALLELISM": 0}, "PASSWORD_HASH_PARALLELISM"),
        (
            {"PASSWORD_HASH_MEMORY_KIB": 8, "PASSWORD_HASH_PARALLELISM": 2},
            "PASSWORD_HASH_MEMORY_KIB",
        ),
    ],
)
def test_a_setting_argon2_cannot_use_stops_the_start(overrides, named):
    with pytest.raises(ValueError, match=named):
        create_app(Config, overrides)


def test_a_setting_below_owasps_floor_is_logged(monkeypatch):
    app = create_app(Config)
    # Earlier tests may have run a logging set-up that disables existing loggers (Celery's).
    monkeypatch.setattr(app.logger, "disabled", False)
    seen: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: seen.append(record.getMessage())
    app.logger.addHandler(handler)
    try:
        app.config["PASSWORD_HASH_MEMORY_KIB"] = 19_455
        check_password_hashing(app)
        assert len(seen) == 1 and "weaker than OWASP" in seen[0]
        app.config.update(PASSWORD_HASH_MEMORY_KIB=19_456, PASSWORD_HASH_TIME_COST=2)
        check_password_hashing(app)
        assert len(seen) == 1  # at OWASP's floor: nothing more said
    finally:
        app.logger.removeHandler(handler)
