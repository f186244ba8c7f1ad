# ruff: noqa: E402 - the environment must be set before the app is imported
"""Real parts for execution/event tests: a database, a lab on loopback, and a real `celery worker`.

The database is what DATABASE_URL says (a throwaway PostgreSQL database next to it, or SQLite in a temp
folder); the broker is Redis when REDIS_URL is set, else kombu's filesystem transport under the instance
folder. A missing service fails the test, it never skips it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
# The lab's domain (corp.example.test) is in no DNS: KDCs come only from a deployment's list.
os.environ.setdefault("AMSW_KERBEROS_DNS", "0")
os.environ.setdefault(
    "KRB5_CONFIG", str(Path(__file__).resolve().parents[2] / "tests" / "krb5-neutral.conf")
)
os.environ.setdefault("AMSW_INSTANCE_DIR", str(ROOT / "instance" / f"test-{os.getpid()}"))
QUEUE = os.environ.setdefault("AMSW_CELERY_QUEUE", f"amsw-test-{uuid.uuid4().hex[:8]}")

from flask_migrate import upgrade

from app import create_app
from app.extensions import db
from app.lab.handlers import HANDLERS, load_handlers
from app.models import Deployment, DeploymentStep, Node, User
from config import Config, TestConfig
from tests.conftest import postgres_database, wait_for  # noqa: F401 - wait_for: re-exported
from tests.execution import (
    labkit,
    testguide,  # noqa: F401 - registers the test guides
    testscripts,  # noqa: F401 - registers the test-only vetted scripts
)

# Imported first by every test worker: the test guides' scripts are vetted before any task runs.
WORKER_INCLUDES = ("tests.execution.testscripts", "tests.execution.testguide")
LAB_USER = "labadmin"
LAB_PASSWORD = "Lab-Passw0rd!"
NODES = ["node1", "node2", "node3"]
SETTINGS = {"HEARTBEAT_SECONDS": 1, "REAPER_GRACE_SECONDS": 3, "ACTION_RETRY_BACKOFF_SECONDS": 0.2}


@pytest.fixture(scope="session")
def exec_db_url(tmp_path_factory):
    """A database of its own (migrated to head, independent of other suites)."""
    base = os.environ.get("DATABASE_URL")
    if base and base.startswith("postgresql"):
        yield from postgres_database(base, prefix="amsw_exec")
    else:
        path = tmp_path_factory.mktemp("execdb") / "exec.sqlite3"
        yield f"sqlite:///{path}"


@pytest.fixture(scope="session")
def exec_app(exec_db_url):
    """The application on that database, with short heartbeat/reaper timings."""
    if Config.REDIS_URL:
        import redis

        redis.Redis.from_url(Config.REDIS_URL).ping()  # fails (not skips) when REDIS_URL is down
    # A queue per database: this fixture is imported by several test packages, so one session can run
    # several workers on different databases; each must only receive its own database's tasks.
    queue = f"{QUEUE}-{uuid.uuid5(uuid.NAMESPACE_URL, exec_db_url).hex[:6]}"
    settings = {"SQLALCHEMY_DATABASE_URI": exec_db_url, "CELERY_QUEUE": queue, **SETTINGS}
    app = create_app(TestConfig, settings)
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
    yield app
    app.extensions.get("amsw_events_hub") and app.extensions["amsw_events_hub"].stop()


@pytest.fixture
def exec_ctx(exec_app):
    """An app context; tables are emptied afterwards (SQLite then hands out the same ids again,
    so the app's events hub forgets what it cached about them)."""
    with exec_app.app_context():
        yield exec_app
        db.session.remove()
        with db.engine.begin() as conn:
            for table in reversed(db.metadata.sorted_tables):
                conn.execute(table.delete())
        if hub := exec_app.extensions.get("amsw_events_hub"):
            hub.forget()


@pytest.fixture
def observed():
    return labkit.Observed()


@pytest.fixture
def lab(tmp_path, observed):
    """Three simulated nodes (NTLM with encryption, Basic) with the test handlers."""
    saved = dict(
        load_handlers()
    )  # the real models too, or restoring would drop them for later tests
    server = labkit.start_lab(tmp_path, NODES, LAB_USER, LAB_PASSWORD, observed)
    yield server
    server.stop()
    HANDLERS.clear()
    HANDLERS.update(saved)


def make_lab(tmp_path, observed, password: str, nodes=NODES):
    """A lab with a chosen password (caller stops it)."""
    return labkit.start_lab(tmp_path, nodes, LAB_USER, password, observed)


def seed_deployment(
    lab, guide_key="exec-test", inputs=None, auth="ntlm", nodes=None, password=LAB_PASSWORD
) -> int:
    """A deployment on the lab's nodes with credentials in the vault; needs an app context."""
    from app.execution import vault
    from app.guides import get_guide

    user = db.session.query(User).filter_by(username="tester").one_or_none()
    if user is None:
        user = User(username="tester", role="admin")
        user.set_password("not-the-canary")
        db.session.add(user)
        db.session.flush()
    guide = get_guide(guide_key)
    deployment = Deployment(
        name="lab",
        domain_fqdn="corp.example.com",
        guide_key=guide.key,
        guide_version=guide.version,
        current_step=guide.steps[0].key,
        created_by_id=user.id,
    )
    deployment.steps = [
        DeploymentStep(step_key=s.key, inputs=dict(inputs or {})) for s in guide.steps
    ]
    deployment.nodes = [
        Node(name=n, host="127.0.0.1", port=lab.ports[n], transport="http", auth=auth, position=i)
        for i, n in enumerate(nodes or lab.node_names)
    ]
    db.session.add(deployment)
    db.session.commit()
    vault.store_credentials(deployment.id, LAB_USER, password, owner_id=user.id)
    return deployment.id


def running_run(
    deployment_id: int,
    started_at,
    heartbeats: dict | None = None,
    phase: str = "detect",
    script: str = "exec_detect",
):
    """A run of exec_step that claims to be running (committed), with one running action per node
    of `heartbeats` (node -> its last heartbeat), on a worker named `gone:<node>`.
    Returns (run, {node: action id}); needs an app context."""
    from app.models import NodeAction, StepRun

    run = StepRun(
        deployment_id=deployment_id,
        step_key="exec_step",
        attempt=1,
        status="running",
        phase=phase,
        started_at=started_at,
    )
    db.session.add(run)
    db.session.flush()
    actions = {}
    for node, beat in (heartbeats or {}).items():
        action = NodeAction(
            step_run_id=run.id,
            node_name=node,
            phase=phase,
            script=script,
            parameters={},
            secret_params={},
            status="running",
            started_at=started_at,
            heartbeat_at=beat,
            worker=f"gone:{node}",
        )
        db.session.add(action)
        db.session.flush()
        actions[node] = action.id
    db.session.commit()
    return run, actions


def spawn_group(cmd: list[str], env: dict, log) -> subprocess.Popen:
    """A subprocess in a process group of its own, its output in `log`: signals sent with
    stop_group reach its children too (Celery's -B beat, gunicorn's workers), so none is orphaned."""
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def stop_group(proc: subprocess.Popen, signum: int = signal.SIGTERM, timeout: float = 15) -> None:
    """Signal the process group, wait up to `timeout` s for its leader, then SIGKILL what is left."""
    if proc.poll() is None:
        _signal_group(proc, signum)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
    _signal_group(proc, signal.SIGKILL)
    proc.wait(5)


def _signal_group(proc: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signum)


class Worker:
    """A `celery worker -P threads -c 8` subprocess against the test database and broker."""

    def __init__(
        self,
        db_url: str,
        log_path: Path,
        loglevel: str = "INFO",
        queue: str = QUEUE,
        extra_env: dict | None = None,
        beat: bool = False,
        settings: dict | None = None,
        includes: tuple[str, ...] = (),
    ) -> None:
        self.log_path = log_path
        self.queue = queue
        env = {
            **os.environ,
            "AMSW_CELERY_QUEUE": queue,
            **(extra_env or {}),
            "DATABASE_URL": db_url,
            "CREDENTIAL_KEY": TestConfig.CREDENTIAL_KEY,
            "SECRET_KEY": "worker-secret",
            "PYTHONPATH": str(ROOT),
            **{k: str(v) for k, v in (SETTINGS if settings is None else settings).items()},
        }
        cmd = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "app.execution.worker.main",
            "worker",
            "-P",
            "threads",
            "-c",
            "8",
            "-Q",
            queue,
            "-n",
            f"{queue}-{uuid.uuid4().hex[:4]}@%h",
            "--include",
            ",".join((*WORKER_INCLUDES, *includes)),
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            loglevel,
        ]
        self.log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = spawn_group(cmd, env, self.log)
        self._wait_ready()
        # As `make run` starts them: the reaper's beat in a process of its own beside the worker.
        self.beat = Beat(env, log_path.parent / "beat.log") if beat else None

    def _wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"celery worker exited:\n{self.log_path.read_text()[-4000:]}")
            if b" ready." in self.log_path.read_bytes():
                return
            time.sleep(0.1)
        raise RuntimeError(
            f"celery worker not ready after {timeout}s:\n{self.log_path.read_text()[-4000:]}"
        )

    def kill9(self) -> None:
        stop_group(self.proc, signal.SIGKILL, timeout=10)

    def stop(self, *, graceful: bool = True) -> None:
        """Warm shutdown (SIGTERM: running tasks finish; Celery takes about 4.5 s even when idle),
        or SIGKILL where nothing after the test depends on the worker (end of the session)."""
        stop_group(self.proc, signal.SIGTERM if graceful else signal.SIGKILL)
        if self.beat is not None:
            self.beat.stop()
        self.log.close()


class Beat:
    """`celery beat` (the reaper's schedule) in a process of its own, its log in `log_path`."""

    def __init__(self, env: dict, log_path: Path, schedule: Path | None = None) -> None:
        self.log_path = log_path
        schedule = schedule or log_path.parent / "celerybeat-schedule"
        cmd = [sys.executable, "-m", "celery", "-A", "app.execution.worker.main", "beat"]
        cmd += ["--loglevel", "INFO", "-s", str(schedule)]
        self.log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = spawn_group(cmd, env, self.log)

    def stop(self, signum: int = signal.SIGTERM) -> None:
        stop_group(self.proc, signum, timeout=10)
        self.log.close()


@pytest.fixture(scope="session")
def worker(exec_app, exec_db_url, tmp_path_factory):
    """One real worker for the session (tests that kill a worker start their own)."""
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    handle = Worker(exec_db_url, log_path, queue=exec_app.config["CELERY_QUEUE"])
    yield handle
    handle.stop(graceful=False)


class Recorded:
    """An Enqueue that keeps what would have gone to Celery."""

    def __init__(self) -> None:
        self.actions: list[int] = []
        self.advances: list[int] = []

    def advance(self, run_id: int, countdown: float = 0) -> None:
        self.advances.append(run_id)

    def action(self, action_id: int, countdown: float = 0) -> None:
        self.actions.append(action_id)


class QueueEnqueue:
    """Send tasks to a given queue (to aim work at one particular worker)."""

    def __init__(self, app, queue: str, celery=None) -> None:
        self.celery, self.queue = celery or app.extensions["celery"], queue

    def advance(self, run_id: int, countdown: float = 0) -> None:
        self.celery.send_task(
            "app.execution.tasks.advance_step_run",
            (run_id,),
            queue=self.queue,
            countdown=countdown or None,
        )

    def action(self, action_id: int, countdown: float = 0) -> None:
        self.celery.send_task(
            "app.execution.tasks.run_node_action",
            (action_id,),
            queue=self.queue,
            countdown=countdown or None,
        )

    def probe(self, deployment_id: int, node_id: int) -> None:
        self.celery.send_task(
            "app.execution.tasks.test_connection", (deployment_id, node_id), queue=self.queue
        )


def events_of(deployment_id: int, kind: str | None = None) -> list:
    """The deployment's events (optionally of one kind) as the database has them, oldest first."""
    from app.models import Event

    db.session.expire_all()
    query = db.select(Event).where(Event.deployment_id == deployment_id).order_by(Event.seq)
    if kind:
        query = query.where(Event.kind == kind)
    rows = db.session.scalars(query).all()
    db.session.commit()
    return list(rows)


def run_status(run_id: int) -> str:
    from app.models import StepRun

    db.session.expire_all()
    status = db.session.get(StepRun, run_id).status
    db.session.commit()
    return status


class LiveServer:
    """The app served over real HTTP by werkzeug's threaded server (as `flask run` does)."""

    def __init__(self, app) -> None:
        import threading

        from werkzeug.serving import make_server

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()


USER_PASSWORD = "user-password-not-canary"


def make_user(username="viewer", role="admin") -> None:
    """A user who can sign in with USER_PASSWORD (needs an app context)."""
    if db.session.query(User).filter_by(username=username).one_or_none() is None:
        user = User(username=username, role=role)
        user.set_password(USER_PASSWORD)
        db.session.add(user)
        db.session.commit()


def signed_in_session(base_url: str, username="viewer"):
    """A requests.Session signed in through the real login form."""
    import re

    import requests

    session = requests.Session()
    page = session.get(f"{base_url}/login").text
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', page
    )
    data = {"username": username, "password": USER_PASSWORD}
    if token:
        data["csrf_token"] = token.group(1)
    response = session.post(f"{base_url}/login", data=data, allow_redirects=False)
    assert response.status_code in (302, 303), f"login failed: {response.status_code}"
    return session


def read_sse(response, count: int, timeout: float = 10) -> list[dict]:
    """Read `count` events (id + JSON data) from a streaming requests response."""
    import json

    events, current = [], {}
    deadline = time.monotonic() + timeout
    if not hasattr(response, "_sse_lines"):  # one line iterator per response, kept across calls
        response._sse_lines = response.iter_lines(chunk_size=1, decode_unicode=True)
    for raw in response._sse_lines:
        if time.monotonic() > deadline:
            break
        if raw.startswith("id:"):
            current["id"] = int(raw[3:].strip())
        elif raw.startswith("data:"):
            current["data"] = json.loads(raw[5:].strip())
        elif raw == "" and current:
            events.append(current)
            current = {}
            if len(events) >= count:
                break
    return events
