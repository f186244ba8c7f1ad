"""History at scale: seed 10,000 deployments and 1,000,000 events, then time the history list, a
filtered search and a deployment page through the Flask test client. p95 target: 200 ms each.

SQLite in a temporary file by default; a throwaway PostgreSQL database next to DATABASE_URL when it
is set. The last line printed is JSON: list_p95_ms, search_p95_ms, detail_p95_ms.
"""

import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("AMSW_INSTANCE_DIR", tempfile.mkdtemp(prefix="amsw-bench-"))

from sqlalchemy import create_engine, insert, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from app import create_app  # noqa: E402
from app.auth.cli import create_user  # noqa: E402
from app.extensions import db  # noqa: E402
from app.guides import get_guide  # noqa: E402
from app.models import Deployment, DeploymentStep, Event, NodeAction, StepRun  # noqa: E402
from config import TestConfig  # noqa: E402

DEPLOYMENTS = int(os.environ.get("BENCH_DEPLOYMENTS", "10000"))
EVENTS = int(os.environ.get("BENCH_EVENTS", "1000000"))
SAMPLES = int(os.environ.get("BENCH_SAMPLES", "60"))
BATCH = 20000
PASSWORD = "bench password 1"
STATUSES = ("completed", "completed", "completed", "aborted", "paused", "in_progress")
VERSIONS = ("2.2.4", "3.0.1", "3.1.0")
KINDS = (
    "node.output",
    "node.output",
    "node.output",
    "node.started",
    "node.finished",
    "phase.started",
    "phase.finished",
    "step.started",
    "step.finished",
    "note.added",
)


def database() -> tuple[str, callable]:
    """(URL, cleanup) of an empty database for this run."""
    base = os.environ.get("DATABASE_URL", "")
    if base.startswith("postgresql"):
        url = make_url(base)
        name = f"amsw_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))

        def drop():
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

        return url.set(database=name).render_as_string(hide_password=False), drop
    path = Path(tempfile.mkdtemp(prefix="amsw-bench-db-")) / "bench.sqlite3"
    return f"sqlite:///{path}", lambda: path.unlink(missing_ok=True)


def _bulk(model, rows: list[dict]) -> None:
    for i in range(0, len(rows), BATCH):
        db.session.execute(insert(model), rows[i : i + BATCH])
    db.session.commit()


def seed() -> None:
    """Users, deployments with their steps, runs, actions and events, inserted in bulk."""
    rng = random.Random(6)
    users = [create_user(f"op{i:02d}", PASSWORD, "operator").id for i in range(20)]
    create_user("reviewer", PASSWORD, "reviewer")
    steps = [s.key for s in get_guide("ams-failover-cluster").steps]
    start = datetime.now(UTC) - timedelta(days=365)
    per = EVENTS // DEPLOYMENTS
    deps, dsteps, runs, actions = [], [], [], []
    for d in range(1, DEPLOYMENTS + 1):
        created = start + timedelta(minutes=d * 50)
        deps.append(
            {
                "id": d,
                "name": f"Cluster {d}",
                "domain_fqdn": f"corp{d % 50}.example.test",
                "guide_key": "ams-failover-cluster",
                "guide_version": "2026.11",
                "status": rng.choice(STATUSES),
                "current_step": steps[-1],
                "created_by_id": rng.choice(users),
                "created_at": created,
                "last_activity_at": created + timedelta(hours=2),
                "event_seq": per,
            }
        )
        for key in steps:
            inputs = {"ams_version": rng.choice(VERSIONS)} if key == "prerequisites" else {}
            if key == "base_cluster":
                inputs = {"cluster_name": f"CLU{d:05d}"}
            dsteps.append({"deployment_id": d, "step_key": key, "status": "done", "inputs": inputs})
        for a, key in enumerate(steps[:3], 1):
            runs.append(
                {
                    "id": len(runs) + 1,
                    "deployment_id": d,
                    "step_key": key,
                    "attempt": 1,
                    "status": "succeeded",
                    "actor_id": deps[-1]["created_by_id"],
                    "outcome": {"status": "done", "summary": "ok", "checks": [], "artifacts": {}},
                    "started_at": created + timedelta(minutes=a),
                    "finished_at": created + timedelta(minutes=a, seconds=rng.randint(20, 300)),
                    "created_at": created,
                    "inputs": {},
                    "options": {},
                }
            )
            for node in ("AMS1", "AMS2"):
                actions.append(
                    {
                        "step_run_id": len(runs),
                        "node_name": node,
                        "phase": "detect",
                        "script": "cluster_detect",
                        "status": "succeeded",
                        "started_at": created,
                        "finished_at": created + timedelta(seconds=5),
                        "parameters": {},
                        "secret_params": {},
                        "created_at": created,
                    }
                )
    for model, rows in (
        (Deployment, deps),
        (DeploymentStep, dsteps),
        (StepRun, runs),
        (NodeAction, actions),
    ):
        _bulk(model, rows)
    _seed_events(rng, start, per)


def _seed_events(rng: random.Random, start: datetime, per: int) -> None:
    batch = []
    for d in range(1, DEPLOYMENTS + 1):
        created = start + timedelta(minutes=d * 50)
        for seq in range(1, per + 1):
            kind = rng.choice(KINDS)
            batch.append(
                {
                    "deployment_id": d,
                    "seq": seq,
                    "kind": kind,
                    "step_key": "base_cluster",
                    "node_name": "AMS1",
                    "payload": {"line": f"output line {seq}"},
                    "created_at": created + timedelta(seconds=seq),
                }
            )
        if len(batch) >= BATCH * 5:
            _bulk(Event, batch)
            batch = []
    _bulk(Event, batch)


def p95(samples: list[float]) -> float:
    return (
        round(statistics.quantiles(samples, n=20, method="inclusive")[-1], 1)
        if len(samples) > 1
        else samples[0]
    )


def timed(client, urls: list[str]) -> list[float]:
    out = []
    for url in urls:
        t0 = time.perf_counter()
        response = client.get(url)
        out.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return out


def measure(app) -> dict:
    client = app.test_client()
    client.post("/login", data={"username": "reviewer", "password": PASSWORD})
    rng = random.Random(7)
    pages = [f"/history?page={rng.randint(1, DEPLOYMENTS // 25)}" for _ in range(SAMPLES)]
    searches = [
        f"/history?status={rng.choice(STATUSES)}&operator=op{rng.randint(0, 19):02d}"
        f"&ams_version={rng.choice(VERSIONS)}&q=corp{rng.randint(0, 49)}&from=2000-01-01"
        for _ in range(SAMPLES)
    ]
    details = [f"/deployments/{rng.randint(1, DEPLOYMENTS)}/history" for _ in range(SAMPLES)]
    timed(client, pages[:5] + searches[:5] + details[:5])  # warm-up
    return {
        name: timed(client, urls)
        for name, urls in (("list", pages), ("search", searches), ("detail", details))
    }


def main() -> None:
    url, cleanup = database()
    app = create_app(TestConfig, {"SQLALCHEMY_DATABASE_URI": url, "WTF_CSRF_ENABLED": False})
    try:
        with app.app_context():
            db.create_all()
            t0 = time.perf_counter()
            seed()
            print(
                f"seeded {DEPLOYMENTS} deployments, {EVENTS} events in {time.perf_counter() - t0:.1f} s"
                f" on {db.engine.dialect.name}"
            )
            if db.engine.dialect.name == "postgresql":
                db.session.execute(text("ANALYZE"))
                db.session.commit()
            db.session.remove()
        figures = measure(app)
        for name, samples in figures.items():
            print(
                f"{name:7} median {statistics.median(samples):6.1f} ms  p95 {p95(samples):6.1f} ms"
                f"  max {max(samples):6.1f} ms  (n={len(samples)})"
            )
        result = {f"{name}_p95_ms": p95(samples) for name, samples in figures.items()}
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        cleanup()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
