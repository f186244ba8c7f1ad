"""CI's services run really runs on PostgreSQL and Redis, and the rules that say so are right."""

import os

import pytest
from sqlalchemy import text

from app.extensions import db
from tests import ci_rules
from tests.ci_rules import FAIL, RUN, SKIP

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
REDIS = "redis://127.0.0.1:6379/0"
SQLITE = "sqlite:////tmp/x.sqlite3"
CI = {"CI_REQUIRE_SERVICES": "1"}


@pytest.mark.parametrize(
    ("env", "verdict"),
    [
        ({}, SKIP),  # a developer's `make test`
        (CI, SKIP),  # .ci/run's embedded suite: neither URL
        ({"DATABASE_URL": PG}, RUN),
        (CI | {"DATABASE_URL": PG, "REDIS_URL": REDIS}, RUN),  # .ci/run's services suite
        (CI | {"REDIS_URL": REDIS}, FAIL),  # services run that lost its DATABASE_URL
        (CI | {"DATABASE_URL": SQLITE, "REDIS_URL": REDIS}, FAIL),
        (CI | {"DATABASE_URL": SQLITE}, FAIL),
        ({"DATABASE_URL": SQLITE}, SKIP),  # no CI: a SQLite file of one's own
        ({"CI_REQUIRE_SERVICES": "0", "REDIS_URL": REDIS}, SKIP),
        (CI | {"AMSW_TEST_SUITE": "services"}, FAIL),  # the services suite lost both URLs
        (CI | {"AMSW_TEST_SUITE": "embedded"}, SKIP),
    ],
)
def test_postgres_verdict(env, verdict):
    got, reason = ci_rules.postgres_verdict(env)
    assert got == verdict
    assert bool(reason) == (verdict != RUN)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, set()),
        (CI, set()),  # the embedded suite checks nothing here
        (CI | {"DATABASE_URL": PG, "REDIS_URL": REDIS}, {"postgresql", "redis"}),
        (CI | {"DATABASE_URL": PG}, {"postgresql", "redis"}),  # Redis missing: must fail
        (CI | {"REDIS_URL": REDIS}, {"postgresql", "redis"}),
        ({"DATABASE_URL": PG}, {"postgresql"}),
        ({"REDIS_URL": REDIS}, {"redis"}),
    ],
)
def test_expected_services(env, expected):
    assert ci_rules.expected_services(env) == expected


def _check_postgresql(app) -> None:
    assert ci_rules.is_postgres(os.environ.get("DATABASE_URL")), "DATABASE_URL is not PostgreSQL"
    with app.app_context():
        assert db.engine.dialect.name == "postgresql"
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT version()")).scalar().startswith("PostgreSQL")


def _check_redis(app) -> None:
    import redis

    url = os.environ.get("REDIS_URL") or ""
    assert url.startswith("redis://"), f"REDIS_URL is {url or 'unset'}, not redis://"
    celery = app.extensions["celery"]
    assert celery.conf.broker_url == url
    assert redis.Redis.from_url(url).ping()
    with celery.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1)
        assert conn.transport_cls == "redis"


CHECKS = {"postgresql": _check_postgresql, "redis": _check_redis}


def test_the_suite_runs_on_the_services_it_was_given(app):
    expected = ci_rules.expected_services(os.environ)
    if not expected:
        pytest.skip("no DATABASE_URL or REDIS_URL: the embedded suite (SQLite, filesystem broker)")
    for service in sorted(expected):
        CHECKS[service](app)
