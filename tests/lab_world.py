"""A lab world for end-to-end tests: the default scenario served on loopback, the form values that
pass in it, the operator's manual work, an observer of what the lab handlers received, and helpers
that drive steps through the step service (app.execution.service) or the JSON API with the real
Celery worker.

Shared by tests/api/ (JSON API, with the lab_api fixture) and tests/e2e/ (step service and browser).
"""

from __future__ import annotations

import copy
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from app.lab import operator, scenarios
from app.lab.handlers import HANDLERS, load_handlers
from app.lab.server import LabServer
from app.lab.store import LabStore
from app.steps import RunOptions
from tests.execution.harness import LAB_PASSWORD, LAB_USER, events_of  # noqa: F401 - shared

WORKER = None  # the e2e worker handle, for diagnostics when a run does not settle
NODES = ["AMS1", "AMS2", "AMS3"]
STEPS = ("prerequisites", "base_cluster", "quorum", "install_ams", "cluster_role", "failover_test")
LICENSE = "LAB-LICENSE-" + "7" * 20


def start_world(
    folder: Path,
    nodes: list[str],
    scenario: str = "default",
    password: str = LAB_PASSWORD,
    keytab: Path | None = None,
) -> tuple[LabStore, LabServer]:
    """A lab on loopback (one port per node) with a fresh state built from `scenario`; with a
    keytab (tests/kdc.py) its nodes accept Kerberos."""
    store = LabStore(folder / "lab" / "state.json")
    store.replace(scenarios.load_scenario(scenario, nodes))
    server = LabServer(store, nodes, 0, LAB_USER, password, keytab=keytab).start()
    return store, server


@pytest.fixture
def world(tmp_path):
    """The lab's default scenario on three nodes, served on loopback."""
    store, server = start_world(tmp_path, NODES)
    yield store, server
    server.stop()


def inputs_for(store: LabStore, install_mode: str = "manual", installer: str = "") -> dict:
    """Every step's form values that pass in this world (as the JSON API / forms take them)."""
    hints = store.read()["suggested_inputs"]
    install = {
        "install_mode": install_mode,
        "certificate_thumbprint": hints["certificate_thumbprint"],
    }
    if installer:
        install["installer_name"] = installer
    return {
        "prerequisites": {k: hints[k] for k in ("ams_version", "gmsa", "sql_connection_string")}
        | {"license_key": LICENSE},
        "base_cluster": {
            "cluster_name": hints["cluster_name"],
            "cluster_address": hints["cluster_address"],
        },
        "quorum": {"witness_type": "file_share", "share_path": hints["share_path"]},
        "install_ams": install,
        "cluster_role": {
            "access_point_name": hints["access_point_name"],
            "access_point_address": hints["access_point_address"],
        },
        "failover_test": {"move_timeout": 60},
    }


def install_by_hand(store: LabStore, nodes: list[str] | None = None) -> None:
    """The operator runs the installer and the configuration tool (license on node 1 only)."""
    with store.transaction() as state:
        operator.install_by_hand(state, nodes)
        operator.configure_by_hand(state, nodes)


def configure_by_hand(store: LabStore) -> None:
    """`flask lab configure-ams`: the configuration tool on every node with AMS (license on #1)."""
    with store.transaction() as state:
        operator.configure_by_hand(state)


def confirm_license(
    deployment_id: int, store: LabStore, install_mode: str = "manual", installer: str = ""
) -> None:
    """The operator ticks "the license is entered" on the install step: from 2.1 the license lives
    in the database, which no node can read, so the check asks instead of failing."""
    body = dict(inputs_for(store, install_mode, installer)["install_ams"], license_confirmed=True)
    save_inputs(deployment_id, "install_ams", body)


def reset_world(store: LabStore, state: dict, faults: tuple[str, ...] = ()) -> None:
    """Put a saved lab state back (running servers see it at once), then inject faults."""
    fresh = copy.deepcopy(state)
    for spec in faults:
        scenarios.apply_fault(fresh, spec)
    store.replace(fresh)


# ------------------------------------------------------------------------------------------------
# Test-only observation hook: what each lab handler received (nothing in the product records this)


@dataclass
class Call:
    node: str
    script: str
    params: dict[str, Any]
    auth: str


@dataclass
class LabCalls:
    """Every handler invocation the lab dispatched, in order (the lab runs in the test process)."""

    calls: list[Call] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, call: Call) -> None:
        with self.lock:
            self.calls.append(call)

    def of(self, script: str, node: str | None = None) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.script == script and node in (None, c.node)]

    def count(self, script: str) -> Counter:
        """How often `script` ran, per node."""
        return Counter(c.node for c in self.of(script))

    def clear(self) -> None:
        with self.lock:
            self.calls.clear()


@contextmanager
def observe_lab():
    """Wrap every registered lab handler so its bound parameters are recorded, then restore them.

    The wrapper records before calling, so a handler that raises (or a reboot that drops the reply)
    still counts as having run; a `crash_halfway` fault never calls the handler and is not counted.
    """
    load_handlers()
    saved = dict(HANDLERS)
    seen = LabCalls()

    def wrap(name, func):
        def recorded(ctx):
            seen.add(Call(ctx.node, name, copy.deepcopy(ctx.params), ctx.auth))
            return func(ctx)

        return recorded

    HANDLERS.update({name: wrap(name, func) for name, func in saved.items()})
    try:
        yield seen
    finally:
        HANDLERS.clear()
        HANDLERS.update(saved)


# ------------------------------------------------------------------------------------------------
# Driving steps through the step service (needs an app context on the worker's database)


def operator_id(username: str = "e2e-operator") -> int:
    """The acting user (created on first use; tables are emptied between tests)."""
    from app.extensions import db
    from app.models import User

    user = db.session.query(User).filter_by(username=username).one_or_none()
    if user is None:
        user = User(username=username, role="admin")
        user.set_password("not-used-in-these-tests")
        db.session.add(user)
        db.session.commit()
    return user.id


def lab_nodes(server: LabServer, auth: str = "ntlm") -> list[dict]:
    """Every lab node as a row of the new-deployment form: loopback, HTTP, its own port."""
    return [
        {
            "name": n,
            "host": "127.0.0.1",
            "port": server.ports[n],
            "transport": "http",
            "auth": auth,
            "cert_validation": True,
        }
        for n in server.node_names
    ]


def new_deployment(
    server: LabServer,
    store: LabStore,
    name: str = "E2E lab",
    auth: str = "ntlm",
    password: str = LAB_PASSWORD,
    guide_key: str | None = None,
) -> int:
    """A deployment of `guide_key` (by default the default guide) on every lab node, created like
    the screen does, with the WinRM credentials."""
    from app.deployments.service import create_deployment
    from app.execution import vault
    from app.extensions import db
    from app.guides import DEFAULT_GUIDE
    from app.models import User

    user = db.session.get(User, operator_id())
    domain = store.read()["domain"]["fqdn"]
    deployment = create_deployment(
        {"name": name, "domain_fqdn": domain, "nodes": lab_nodes(server, auth)},
        user,
        guide_key=guide_key or DEFAULT_GUIDE,
    )
    vault.store_credentials(deployment.id, LAB_USER, password, owner_id=user.id)
    return deployment.id


def save_inputs(deployment_id: int, step_key: str, body: dict) -> None:
    """Validate `body` with the step's own form (as the API does) and save it."""
    from app.api.formjson import validate_with_form
    from app.deployments.service import node_addresses
    from app.extensions import db
    from app.guides import get_guide
    from app.models import Deployment, User
    from app.wizard.inputs import save_inputs as save

    deployment = db.session.get(Deployment, deployment_id)
    step = get_guide(deployment.guide_key).step(step_key)
    form, errors = validate_with_form(step.form_class, body)
    assert not errors, (step_key, errors)
    problems = step.cross_check(deployment, form.data, lambda: node_addresses(deployment))
    assert not problems, (step_key, problems)
    save(step, deployment, form.data, db.session.get(User, operator_id()))


def save_all_inputs(deployment_id: int, inputs: dict[str, dict]) -> None:
    for step_key, body in inputs.items():
        save_inputs(deployment_id, step_key, body)


def mark_done(deployment_id: int, step_keys: tuple[str, ...]) -> None:
    """Seed earlier steps as finished (their lab effects come from a saved lab state)."""
    from app.extensions import db
    from app.models import Deployment

    deployment = db.session.get(Deployment, deployment_id)
    for key in step_keys:
        deployment.step(key).status = "done"
    deployment.status = "in_progress"
    db.session.commit()


def wait_run(run_id: int, timeout: float = 90) -> Any:
    """Poll the StepRun until it leaves queued/running; returns the (refreshed) row."""
    from app.extensions import db
    from app.models import StepRun

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.expire_all()
        run = db.session.get(StepRun, run_id)
        if run.status not in ("queued", "running"):
            db.session.commit()
            return run
        db.session.commit()
        if WORKER is not None and WORKER.proc.poll() is not None:
            pytest.fail(f"the worker died:\n{WORKER.log_path.read_text()[-3000:]}")
        time.sleep(0.1)
    pytest.fail(f"step run {run_id} did not settle in {timeout} s")


def start(deployment_id: int, step_key: str, options: dict | None = None, timeout: float = 90):
    """start_step_run, then wait until the attempt ends."""
    from app.execution import service

    run = service.start_step_run(
        deployment_id, step_key, operator_id(), options=RunOptions(**(options or {}))
    )
    return wait_run(run.id, timeout)


def run_prerequisites(deployment_id: int, timeout: float = 90):
    """The Prerequisites step on Windows as shipped: the first attempt finds no ActiveDirectory
    module on any node and offers to install it; the operator accepts, and the step passes.
    Returns (first attempt, final attempt)."""
    first = start(deployment_id, "prerequisites", timeout=timeout)
    module = [c for c in failing_checks(first) if c["key"] == "ad_module"]
    assert first.status == "failed" and module and module[0]["fix"], outcome_text(first)
    assert [c["key"] for c in failing_checks(first)] == ["ad_module"], outcome_text(first)
    final = start(
        deployment_id, "prerequisites", options={"fix": module[0]["fix"]["id"]}, timeout=timeout
    )
    assert final.status == "succeeded", outcome_text(final)
    return first, final


def decide(
    deployment_id: int,
    step_key: str,
    decision: str = "retry",
    reason: str | None = None,
    nodes: list[str] | None = None,
    timeout: float = 90,
):
    """resolve_pause, then wait for the attempt it started (None for skip/abort)."""
    from app.execution import service

    run = service.resolve_pause(deployment_id, step_key, decision, reason, nodes, operator_id())
    return wait_run(run.id, timeout) if run is not None else None


def outcome_text(run) -> str:
    """Summary and every check of a finished run, for assertions and failure messages."""
    outcome = run.outcome or {}
    lines = [str(outcome.get("summary"))]
    for check in outcome.get("checks") or []:
        lines.append(
            f"[{check['status']}] {check['key']} | {check['title']} | {check['evidence']} "
            f"| {check['remediation']}"
        )
    return "\n".join(lines)


def failing_checks(run) -> list[dict]:
    return [c for c in (run.outcome or {}).get("checks") or [] if c["status"] == "fail"]


def step_status(deployment_id: int, step_key: str) -> str:
    from app.extensions import db
    from app.models import Deployment

    db.session.expire_all()
    status = db.session.get(Deployment, deployment_id).step(step_key).status
    db.session.commit()
    return status


def actions_of(deployment_id: int, script: str) -> list:
    """Every NodeAction of the deployment that ran `script`, across attempts."""
    from app.extensions import db
    from app.models import NodeAction, StepRun

    db.session.expire_all()
    rows = db.session.scalars(
        db.select(NodeAction)
        .join(StepRun)
        .where(StepRun.deployment_id == deployment_id, NodeAction.script == script)
        .order_by(NodeAction.id)
    ).all()
    db.session.commit()
    return list(rows)


# ------------------------------------------------------------------------------------------------
# Driving steps through the JSON API (`call`: the lab_api fixture of tests/api/conftest.py)


def run_step(call, deployment_id: int, step: str, timeout: float = 120, fix=None) -> dict:
    """Run `step` with the lab's WinRM credentials (and the offered `fix`), then wait until it
    settles; returns the step as the status endpoint shows it."""
    body = {"username": LAB_USER, "password": LAB_PASSWORD} | ({"fix": fix} if fix else {})
    call("POST", f"/deployments/{deployment_id}/steps/{step}/run", body, expect=202)
    return wait_settled(call, deployment_id, step, timeout)


def wait_settled(call, deployment_id: int, step: str, timeout: float = 120) -> dict:
    """Poll the status endpoint until no run is active and `step` is done or needs attention."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = call("GET", f"/deployments/{deployment_id}/status")
        current = next(s for s in status["steps"] if s["key"] == step)
        if status["active_run"] is None and current["status"] in ("done", "needs_attention"):
            return current
        time.sleep(0.3)
    pytest.fail(f"{step} did not settle in {timeout} s")
