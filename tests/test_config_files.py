"""Secrets from files (`NAME_FILE`, as Docker and compose secrets give them), and the first admin's
password left in a file rather than in the logs."""

import os

import pytest
from sqlalchemy import select

import config
from app.auth.cli import ensure_admin_command
from app.extensions import db
from app.models import User


@pytest.fixture
def secret_file(tmp_path):
    def write(name: str, value: str):
        path = tmp_path / name
        path.write_text(value)
        return path

    return write


def test_a_file_is_read_and_its_newline_dropped(monkeypatch, secret_file):
    monkeypatch.delenv("LDAP_BIND_PASSWORD", raising=False)
    monkeypatch.setenv("LDAP_BIND_PASSWORD_FILE", str(secret_file("ldap", "s3cret\n")))
    assert config._secret("LDAP_BIND_PASSWORD") == "s3cret"


def test_without_a_file_the_variable_or_the_default_counts(monkeypatch):
    monkeypatch.delenv("NOTIFY_SMTP_PASSWORD_FILE", raising=False)
    monkeypatch.delenv("NOTIFY_SMTP_PASSWORD", raising=False)
    assert config._secret("NOTIFY_SMTP_PASSWORD", "none") == "none"
    monkeypatch.setenv("NOTIFY_SMTP_PASSWORD", "plain")
    assert config._secret("NOTIFY_SMTP_PASSWORD") == "plain"


def test_both_or_an_unreadable_file_are_refused(monkeypatch, secret_file, tmp_path):
    monkeypatch.setenv("SECRET_KEY", "plain")
    monkeypatch.setenv("SECRET_KEY_FILE", str(secret_file("key", "from-file")))
    with pytest.raises(RuntimeError, match="not both"):
        config._secret("SECRET_KEY")
    monkeypatch.delenv("SECRET_KEY")
    monkeypatch.setenv("SECRET_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(RuntimeError, match="cannot read") as raised:
        config._secret("SECRET_KEY")
    assert "from-file" not in str(raised.value)


def test_instance_secrets_take_the_file_first(monkeypatch, secret_file):
    monkeypatch.delenv("CREDENTIAL_KEY", raising=False)
    monkeypatch.setenv("CREDENTIAL_KEY_FILE", str(secret_file("credential", "fernet-key\n")))
    assert config._instance_secret("CREDENTIAL_KEY") == "fernet-key"


def test_database_password_goes_into_the_url(monkeypatch, secret_file, tmp_path):
    monkeypatch.delenv("DATABASE_URL_FILE", raising=False)
    monkeypatch.delenv("DATABASE_PASSWORD", raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://amsw@db:5432/amsw")
    monkeypatch.setenv("DATABASE_PASSWORD_FILE", str(secret_file("pg", "p@ss/word:1\n")))
    url = config._database_url(tmp_path)
    assert url == "postgresql+psycopg://amsw:p%40ss%2Fword%3A1@db:5432/amsw"
    from sqlalchemy.engine import make_url

    assert make_url(url).password == "p@ss/word:1"


def test_database_url_from_a_file_and_the_sqlite_default(monkeypatch, secret_file, tmp_path):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("DATABASE_PASSWORD", raising=False)
    monkeypatch.delenv("DATABASE_PASSWORD_FILE", raising=False)
    monkeypatch.delenv("DATABASE_URL_FILE", raising=False)
    assert config._database_url(tmp_path) == f"sqlite:///{tmp_path / 'amsw.sqlite3'}"
    url = "postgresql+psycopg://amsw:pw@db/amsw"
    monkeypatch.setenv("DATABASE_URL_FILE", str(secret_file("url", url + "\n")))
    assert config._database_url(tmp_path) == url


def test_redis_password_goes_into_the_url(monkeypatch, secret_file):
    monkeypatch.delenv("REDIS_URL_FILE", raising=False)
    monkeypatch.delenv("REDIS_PASSWORD", raising=False)
    monkeypatch.delenv("REDIS_PASSWORD_FILE", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert config._redis_url() is None
    monkeypatch.setenv("REDIS_URL", "redis://redis:6379/0")
    assert config._redis_url() == "redis://redis:6379/0"
    monkeypatch.setenv("REDIS_PASSWORD_FILE", str(secret_file("redis", "a b/c\n")))
    assert config._redis_url() == "redis://:a%20b%2Fc@redis:6379/0"
    monkeypatch.setenv("REDIS_URL", "rediss://user:old@redis:6380/1")
    assert config._redis_url() == "rediss://user:a%20b%2Fc@redis:6380/1"


def test_first_admin_password_is_written_to_the_file_not_printed(app, tmp_path, monkeypatch):
    target = tmp_path / "first-admin-password"
    monkeypatch.setenv("FIRST_ADMIN_PASSWORD_FILE", str(target))
    result = app.test_cli_runner().invoke(ensure_admin_command)
    assert result.exit_code == 0, result.output
    password = target.read_text().strip()
    assert len(password) >= 16
    assert password not in result.output
    assert str(target) in result.output
    assert os.stat(target).st_mode & 0o777 == 0o600
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "admin"))
        assert user.role == "admin" and user.check_password(password)


def test_first_admin_password_is_taken_from_an_existing_file(app, tmp_path):
    given = tmp_path / "admin-secret"
    given.write_text("chosen-by-the-operator-1\n")
    result = app.test_cli_runner().invoke(ensure_admin_command, ["--password-file", str(given)])
    assert result.exit_code == 0, result.output
    assert "chosen-by-the-operator-1" not in result.output
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "admin"))
        assert user.check_password("chosen-by-the-operator-1")
