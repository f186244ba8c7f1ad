"""What a test that needs PostgreSQL or Redis does in each suite: run, skip with a reason, or fail.

.ci/run exports CI_REQUIRE_SERVICES=1 for both of its suites: the embedded one has neither
DATABASE_URL nor REDIS_URL, the services one has both. A suite with either set is the services
run, and then a missing or wrong service fails instead of skipping.
"""

from __future__ import annotations

from collections.abc import Mapping

RUN, SKIP, FAIL = "run", "skip", "fail"


def services_required(env: Mapping[str, str]) -> bool:
    """CI says the services must be there (both suites of .ci/run)."""
    return env.get("CI_REQUIRE_SERVICES") == "1"


def services_run(env: Mapping[str, str]) -> bool:
    """This suite was given a service, or .ci/run named it the services suite (so a run that lost
    both URLs still fails rather than passing as the embedded one)."""
    named = env.get("AMSW_TEST_SUITE") == "services"
    return named or bool(env.get("DATABASE_URL") or env.get("REDIS_URL"))


def is_postgres(url: str | None) -> bool:
    """The URL names PostgreSQL (as tests/conftest.py's database_url reads it)."""
    return bool(url) and url.startswith("postgresql")


def postgres_verdict(env: Mapping[str, str]) -> tuple[str, str]:
    """(RUN | SKIP | FAIL, reason) for a test marked `postgres`."""
    url = env.get("DATABASE_URL")
    if is_postgres(url):
        return RUN, ""
    if services_required(env) and services_run(env):
        shown = url.split(":", 1)[0] if url else "unset"
        return FAIL, f"CI_REQUIRE_SERVICES=1 in the services run, but DATABASE_URL is {shown}"
    return SKIP, "needs PostgreSQL (DATABASE_URL=postgresql+psycopg://...); this suite is SQLite"


def expected_services(env: Mapping[str, str]) -> set[str]:
    """The services this suite must really be using: both in CI's services run, else those set."""
    if services_required(env) and services_run(env):
        return {"postgresql", "redis"}
    named = {"postgresql": env.get("DATABASE_URL"), "redis": env.get("REDIS_URL")}
    return {service for service, url in named.items() if url}
