"""Exports: one deployment as complete JSON, the history list as CSV. Secrets never appear: the
whole document passes app.masking, runs and actions have app.history.records' fields."""

from __future__ import annotations

import csv
import io
from typing import Any

from app.history.records import declared_secret_names, jsonable, timestamp
from app.history.search import facts
from app.history.timeline import deployment_page
from app.masking import mask, mask_text
from app.models import Deployment


def deployment_json(deployment: Deployment) -> dict:
    """The complete record of one deployment: nodes, steps, attempts, actions, events (format 2:
    attempts and actions name their fields as the API does)."""
    page = deployment_page(deployment)
    body = {
        "format": "ams-wizard/deployment-export/2",
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
    return jsonable(mask(body, declared_secret_names()))


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
    """The history list as CSV (formula-looking cells are prefixed so spreadsheets do not run them;
    passwords in text masked)."""
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
                    timestamp(d.created_at),
                    timestamp(d.last_activity_at),
                )
            ]
        )
    return out.getvalue()


def _cell(value: Any) -> Any:
    text = mask_text(str(value))
    if text[:1] in ("=", "+", "-", "@"):
        return "'" + text
    return text if isinstance(value, str) else value
