"""The history list: filters that map onto indexed columns, newest first, paginated."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Select, and_, func, or_, select

from app import validators
from app.extensions import db
from app.guides import GUIDES
from app.models import Deployment, DeploymentStep, User

PER_PAGE = 25
STATUSES = ("draft", "in_progress", "paused", "completed", "aborted")


@dataclass(frozen=True)
class Filters:
    """What the history form asks for; every field optional."""

    q: str = ""
    status: str = ""
    operator: str = ""
    date_from: date | None = None
    date_to: date | None = None
    ams_version: str = ""

    @classmethod
    def from_args(cls, args) -> Filters:
        """The filters of a query string; ValueError (a message to show) for a refused term."""
        return cls(
            q=_term(args, "q", "The search text", 120),
            status=args.get("status") if args.get("status") in STATUSES else "",
            operator=_term(args, "operator", "The operator", 64),
            date_from=_date(args.get("from")),
            date_to=_date(args.get("to")),
            ams_version=_term(args, "ams_version", "The version", 32),
        )

    def as_args(self) -> dict:
        """Query-string form, for paging links and the CSV export."""
        values = {
            "q": self.q,
            "status": self.status,
            "operator": self.operator,
            "from": self.date_from,
            "to": self.date_to,
            "ams_version": self.ams_version,
        }
        return {k: str(v) for k, v in values.items() if v}


def _term(args, name: str, what: str, limit: int) -> str:
    """A search term: the free-text character rule, then cut to `limit` characters."""
    return validators.check_characters((args.get(name) or "").strip(), what)[:limit]


def _date(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def _sources(fact: str) -> list[tuple[str, str, str]]:
    """(guide key, step key, input field) of every step, in every guide, that declares `fact`
    among its history facts (app.steps.Step.history_facts)."""
    return [
        (guide.key, step.key, step.history_facts[fact])
        for guide in GUIDES.values()
        for step in guide.steps
        if fact in step.history_facts
    ]


def _with_fact(fact: str, matches):
    """Deployments whose saved input for `fact` satisfies matches(column)."""
    return or_(
        *(
            and_(
                Deployment.guide_key == guide_key,
                Deployment.id.in_(
                    select(DeploymentStep.deployment_id).where(
                        DeploymentStep.step_key == step_key,
                        matches(DeploymentStep.inputs[field].as_string()),
                    )
                ),
            )
            for guide_key, step_key, field in _sources(fact)
        )
    )


def _text(q: str):
    like = f"%{q.lower()}%"
    return or_(
        func.lower(Deployment.name).like(like),
        func.lower(Deployment.domain_fqdn).like(like),
        _with_fact("name", lambda column: func.lower(column).like(like)),
    )


def query(filters: Filters) -> Select:
    """SELECT deployments matching the filters (no ordering or paging)."""
    stmt = select(Deployment)
    if filters.status:
        stmt = stmt.where(Deployment.status == filters.status)
    if filters.operator:
        user = select(User.id).where(User.username == filters.operator).scalar_subquery()
        stmt = stmt.where(Deployment.created_by_id == user)
    if filters.date_from:
        stmt = stmt.where(Deployment.created_at >= datetime.combine(filters.date_from, time(), UTC))
    if filters.date_to:
        end = datetime.combine(filters.date_to + timedelta(days=1), time(), UTC)
        stmt = stmt.where(Deployment.created_at < end)
    if filters.ams_version:
        stmt = stmt.where(_with_fact("ams_version", lambda column: column == filters.ams_version))
    if filters.q:
        stmt = stmt.where(_text(filters.q))
    return stmt


def page(filters: Filters, number: int, per_page: int = PER_PAGE) -> tuple[list[Deployment], int]:
    """One page, newest first, with the total for the pager."""
    stmt = query(filters)
    total = db.session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    rows = db.session.scalars(
        stmt.order_by(Deployment.created_at.desc(), Deployment.id.desc())
        .limit(per_page)
        .offset((number - 1) * per_page)
    ).unique()
    return list(rows), total


def facts(deployment_ids: list[int]) -> dict[int, dict]:
    """Each deployment's history facts ("name", "ams_version"), from its saved step inputs."""
    if not deployment_ids:
        return {}
    wanted: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for fact in ("name", "ams_version"):
        for guide_key, step_key, field in _sources(fact):
            wanted.setdefault((guide_key, step_key), []).append((fact, field))
    rows = db.session.execute(
        select(Deployment.guide_key, DeploymentStep.deployment_id, DeploymentStep.step_key)
        .add_columns(DeploymentStep.inputs)
        .join(Deployment, Deployment.id == DeploymentStep.deployment_id)
        .where(
            DeploymentStep.deployment_id.in_(deployment_ids),
            DeploymentStep.step_key.in_({step for _, step in wanted}),
        )
    )
    out: dict[int, dict] = {i: {} for i in deployment_ids}
    for guide_key, dep, key, inputs in rows:
        for fact, field in wanted.get((guide_key, key), []):
            out[dep][fact] = (inputs or {}).get(field)
    return out
