"""Exports: one deployment as complete JSON, the history list as CSV. Secrets never appear."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime
from typing import Any

from app.guides import GUIDES
from app.history.search import facts
from app.history.timeline import deployment_page
from app.models import Deployment

SECRET_KEY = re.compile(r"pass(word)?|secret|token|license_key|credential", re.IGNORECASE)


def _secret_names() -> frozenset[str]:
    return frozenset(f for g in GUIDES.values() for s in g.steps for f in s.secret_fields)


def scrub(value: Any, names: frozenset[str] | None = None) -> Any:
    """Drop every key that names a secret, at any depth (defence in depth: none are stored)."""
    names = _secret_names() if names is None else names
    if isinstance(value, dict):
        return {
            k: scrub(v, names)
            for k, v in value.items()
            if k not in names and not SECRET_KEY.search(str(k))
        }
    if isinstance(value, list | tuple):
        return [scrub(v, names) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def deployment_json(deployment: Deployment) -> dict:
    """The complete record of one deployment: nodes, steps, attempts, actions, events."""
    page = deployment_page(deployment)
    body = {
        "format": "ams-wizard/deployment-export/1",
        "deployment": {
            "id": deployment.id,
            "name": deployment.name,
            "domain": deployment.domain_fqdn,
            "guide": deployment.guide_key,
            "guide_version": deployment.guide_version,
            "status": deployment.status,
            "current_step": deployment.current_step,
            "created_by": deployment.created_by.username if deployment.created_by else None,
            "created_at": deployment.created_at,
            "last_activity_at": deployment.last_activity_at,
        },
        "nodes": [
            {
                "name": n.name,
                "host": n.host,
                "port": n.port,
                "transport": n.transport,
                "auth": n.auth,
                "excluded": n.excluded,
                "exclude_reason": n.exclude_reason,
            }
            for n in page["nodes"]
        ],
        "summary": page["summary"],
        "steps": page["steps"],
        "events": page["events"],
    }
    return scrub(body)


CSV_COLUMNS = (
    "id",
    "name",
    "domain",
    "cluster",
    "ams_version",
    "status",
    "current_step",
    "created_by",
    "created_at",
    "last_activity_at",
)


def deployments_csv(rows: list[Deployment]) -> str:
    """The history list as CSV (formula-looking cells are prefixed so spreadsheets do not run them)."""
    known = facts([d.id for d in rows])
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for d in rows:
        f = known.get(d.id, {})
        writer.writerow(
            [
                _cell(v)
                for v in (
                    d.id,
                    d.name,
                    d.domain_fqdn,
                    f.get("name") or "",
                    f.get("ams_version") or "",
                    d.status,
                    d.current_step,
                    d.created_by.username if d.created_by else "",
                    d.created_at.isoformat(),
                    d.last_activity_at.isoformat(),
                )
            ]
        )
    return out.getvalue()


def _cell(value: Any) -> Any:
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else value
