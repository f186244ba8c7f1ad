"""Every lab fault, through the step service with the real worker: the deployment pauses with a
message naming the cause and the remedy; the fault is cleared; Retry (or retry_failed for a node's
own failure on install_ams) completes the step, and no destructive script ran twice.

One lab and one worker serve the whole module. A module fixture installs once on two nodes and keeps
the lab state as it was before each step; every case starts from the saved state of its step (with
the earlier steps seeded as done), injects its fault, and runs only that step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from app.lab import scenarios
from tests.conftest import wait_for
from tests.lab_world import (
    STEPS,
    configure_by_hand,
    confirm_license,
    decide,
    events_of,
    failing_checks,
    inputs_for,
    install_by_hand,
    mark_done,
    new_deployment,
    outcome_text,
    reset_world,
    run_prerequisites,
    save_all_inputs,
    start,
    start_world,
    step_status,
)

pytestmark = pytest.mark.slow
NODES = ["AMS1", "AMS2"]
INSTALLER = "LithnetAccessManagerService-2.1.1069.0-x64.exe"


@pytest.fixture(scope="module")
def stages(exec_app, e2e_worker, tmp_path_factory):
    """A two-node lab, and its state before each step of a real install (taken once)."""
    store, server = start_world(tmp_path_factory.mktemp("faults"), NODES)
    saved: dict[str, dict] = {}
    with exec_app.app_context():
        deployment_id = new_deployment(server, store, name="stages")
        save_all_inputs(deployment_id, inputs_for(store))
        confirm_license(deployment_id, store)  # entered in the configuration tool on the first node
        for step in STEPS:
            if step == "prerequisites":
                # Windows as shipped has no ActiveDirectory module: the step installs it on AMS1
                # with consent; every prerequisites case starts from the world after that.
                run_prerequisites(deployment_id)
                saved[step] = store.read()
                continue
            saved[step] = store.read()
            if step == "install_ams":
                install_by_hand(store)
            run = start(deployment_id, step)
            assert run.status == "succeeded", (step, outcome_text(run))
        saved["end"] = store.read()
    yield store, server, saved
    server.stop()


@dataclass(frozen=True)
class Case:
    spec: str  # the fault spec(s), "+"-separated
    step: str
    words: tuple[str, ...] = ()  # must appear in the paused outcome (summary, checks)
    check: str | None = None  # key prefix of a failing check that must name the cause
    decision: str = "retry"
    mode: str = "manual"
    paused: bool = True  # False: the step finishes with a warning naming the cause instead
    fix: bool = False  # answer with the fix the failing check offers instead of clearing the fault
    once: dict = field(default_factory=dict)  # script -> {node: count} over both attempts
    before: str = ""  # operator work before the first attempt: "hand" = manual install

    @property
    def id(self) -> str:
        return f"{self.step}-{self.spec}"


CASES = [
    # --- protocol faults -------------------------------------------------------------------
    Case(
        "unreachable:AMS2",
        "prerequisites",
        ("Cannot reach the node", "did not answer on its WinRM port"),
        "winrm",
    ),
    Case(
        "auth_failure:AMS2",
        "prerequisites",
        ("Authentication failed", "refused the credentials"),
        "winrm",
    ),
    Case("slow:AMS2:1.5", "prerequisites", paused=False),  # progress events, see below
    Case("crash:AMS1:prereq_node_facts", "prerequisites", ("crashed halfway",), "facts"),
    Case(
        "unreachable:AMS2",
        "base_cluster",
        ("Cannot reach the node", "did not answer on its WinRM port"),
        "detect",
    ),
    Case(
        "crash:AMS1:cluster_create",
        "base_cluster",
        ("crashed halfway",),
        "create",
        once={"cluster_create": {"AMS1": 1}},
    ),
    Case(
        "reboot:AMS1:cluster_create",
        "base_cluster",
        ("Creating cluster AMSCLU failed", "answers again"),
        "create",
        once={"cluster_create": {"AMS1": 1}},
    ),
    Case(
        "crash:AMS1:quorum_set",
        "quorum",
        ("crashed halfway",),
        "apply",
        once={"quorum_set": {"AMS1": 1}},
    ),
    Case(
        "reboot:AMS1:quorum_set",
        "quorum",
        ("Setting the quorum witness failed", "answers again"),
        "apply",
        once={"quorum_set": {"AMS1": 1}},
    ),
    Case(
        "unreachable:AMS2",
        "install_ams",
        ("Cannot reach the node", "did not answer on its WinRM port"),
        "detect",
        decision="retry_failed",
        before="hand",
    ),
    Case(
        "crash:AMS2:ams_install_start",
        "install_ams",
        ("crashed halfway",),
        "install_start",
        decision="retry_failed",
        mode="unattended",
        before="hand1",
        once={"ams_install_start": {"AMS2": 1}},
    ),
    Case(
        "reboot:AMS2:ams_install_start",
        "install_ams",
        ("Starting the installer", "answers again"),
        "install_start",
        decision="retry_failed",
        mode="unattended",
        before="hand1",
    ),
    Case(
        "crash:AMS1:role_create",
        "cluster_role",
        ("crashed halfway",),
        "create",
        once={"role_create": {"AMS1": 1}},
    ),
    Case(
        "reboot:AMS1:role_create",
        "cluster_role",
        ("not online", "answers again"),
        "create",
        once={"role_create": {"AMS1": 1}},
    ),
    # --- domain faults -----------------------------------------------------------------------
    Case("kds_missing", "prerequisites", ("KDS",), "kds"),
    Case("kds_too_new", "prerequisites", ("KDS",), "kds"),
    Case("gmsa_missing", "prerequisites", ("svc-ams",), "gmsa"),
    Case("gmsa_delegable", "prerequisites", ("delegat",), "gmsa"),
    Case(
        "gmsa_not_allowed:AMS2",
        "prerequisites",
        ("Missing: AMS2$", "replaces the whole list"),
        "gmsa_principals",
        fix=True,
        once={"prereq_set_gmsa_principals": {"AMS1": 1}},
    ),
    Case(
        "feature_missing:AMS2",
        "prerequisites",
        ("Failover Clustering feature on AMS2", "Install-WindowsFeature"),
        "feature",
        fix=True,
        once={"prereq_install_feature": {"AMS2": 1}},
    ),
    Case("sql_express", "prerequisites", ("Express",), "sql"),
    Case("sql_unreachable:AMS2", "prerequisites", ("1433",), "sql"),
    Case("sql_no_database", "prerequisites", ("AccessManager",), "sql"),
    Case("sql_no_login", "prerequisites", ("login",), "sql"),
    Case(
        "no_stored_passwords:AMS1",
        "prerequisites",
        ("0x80070520", "CredSSP"),
        "domain_facts",
    ),
    Case("version_mismatch:AMS2", "prerequisites", ("3.0.1638.0",), "ams_installed"),
    Case("old_dc", "prerequisites", ("2012",), "dc"),
    Case(
        "pending_reboot:AMS2",
        "prerequisites",
        ("A restart is pending", "restart it and wait"),
        "reboot",
        paused=False,
    ),
    Case(
        "test_cluster_warn",
        "base_cluster",
        ("Validate Network Communication", "validation report"),
        "validation",
        paused=False,
        once={"cluster_create": {"AMS1": 1}},
    ),
    Case(
        "test_cluster_fail",
        "base_cluster",
        ("Cluster validation reported failures",),
        "validation",
        once={"cluster_create": {"AMS1": 1}},
    ),
    Case(
        "version_mismatch:AMS2",
        "install_ams",
        ("3.0.1638.0",),
        "version",
        decision="retry_failed",
        before="hand1",
    ),
    Case(
        "role_fails_on:AMS1",
        "cluster_role",
        ("not online",),
        "role_state",
        once={"role_create": {"AMS1": 1}},
    ),
    Case("role_fails_on:AMS2", "failover_test", ("did not work on every node",), "failover"),
]


@pytest.fixture(autouse=True)
def quick_installer(monkeypatch):
    """The simulated installer finishes at its first status poll (one 5 s poll wait, not two)."""
    from app.lab.handlers import ams

    monkeypatch.setattr(ams, "INSTALL_POLLS", 1)


def _sign_in_again(deployment_id: int, step_key: str, node_name: str) -> None:
    """A node refused the credentials: a retry with them is refused (it would fail again and
    count towards locking the account) until they sign in once with Test connections."""
    from app.execution import probe, service
    from app.extensions import db
    from app.models import Deployment
    from tests.execution.harness import LAB_PASSWORD, LAB_USER
    from tests.lab_world import operator_id

    with pytest.raises(service.StepBlocked, match=f"{node_name} refused the credentials"):
        service.resolve_pause(deployment_id, step_key, "retry", "", None, operator_id())
    deployment = db.session.get(Deployment, deployment_id)
    node = next(n for n in deployment.nodes if n.name == node_name)
    probe.request(deployment, node, LAB_USER, LAB_PASSWORD, operator_id())
    db.session.commit()

    def signed_in() -> bool:
        db.session.remove()
        return any(e.payload.get("ok") for e in events_of(deployment_id, probe.TESTED))

    wait_for(signed_in, timeout=30, message="the connection test")


def _clear(store) -> None:
    with store.transaction() as state:
        scenarios.clear_faults(state)


def _wait_back(store, node: str, boots: int, timeout: float = 15) -> None:
    """Until a node restarted by the reboot fault answers again (the operator waits too): the lab
    counts the boot once its down time is over (LabServer._back_up)."""

    def booted() -> bool:
        return int(store.peek("nodes", node, "boot_count", default=0) or 0) > boots

    wait_for(booted, timeout, 0.1, f"{node} to come back from its reboot")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_fault_pauses_then_resumes(case, stages, e2e, lab_calls):
    store, server, saved = stages
    state = saved[case.step]
    reset_world(store, state, tuple(case.spec.split("+")))
    if case.before == "hand":
        install_by_hand(store)
    elif case.before == "hand1":
        install_by_hand(store, ["AMS1"])
    if case.mode == "unattended":
        folder = Path(e2e.config["INSTANCE_DIR"]) / "installers"
        if not (folder / INSTALLER).exists():
            assert e2e.test_cli_runner().invoke(args=["lab", "installer"]).exit_code == 0
    deployment_id = new_deployment(server, store, name=f"fault {case.id}")
    installer = INSTALLER if case.mode == "unattended" else ""
    save_all_inputs(deployment_id, inputs_for(store, case.mode, installer))
    confirm_license(deployment_id, store, case.mode, installer)
    mark_done(deployment_id, STEPS[: STEPS.index(case.step)])
    boots = {n: int(store.peek("nodes", n, "boot_count", default=0) or 0) for n in NODES}

    first = start(deployment_id, case.step)
    text = outcome_text(first)
    if not case.paused:
        _finished_with_a_warning(case, deployment_id, first, store, lab_calls)
        return
    assert first.status == "failed", text
    assert step_status(deployment_id, case.step) == "needs_attention"
    for word in case.words:
        assert word in text, (word, text)
    if case.check:
        named = [c for c in failing_checks(first) if c["key"].startswith(case.check)]
        assert named and all(c["remediation"] for c in named), text
    paused = events_of(deployment_id, "step.paused")
    assert paused and paused[-1].payload["reason"] == first.outcome["summary"]
    if case.fix:
        offered = next(c["fix"] for c in failing_checks(first) if c.get("fix"))
        fixed = start(deployment_id, case.step, options={"fix": offered["id"]})
        assert fixed.status == "succeeded", outcome_text(fixed)
        for script, counts in case.once.items():
            assert dict(lab_calls.count(script)) == counts, (script, lab_calls.count(script))
        return

    _clear(store)
    for kind, node, *_ in ([*s.split(":"), ""] for s in case.spec.split("+")):
        if kind == "reboot":
            _wait_back(store, node, boots[node])
    if case.step == "install_ams" and case.before == "hand1" and case.mode == "manual":
        install_by_hand(store, ["AMS2"])  # the operator replaces the other version by hand
    if case.spec.startswith("auth_failure:"):
        _sign_in_again(deployment_id, case.step, case.spec.split(":")[1])
    second = decide(deployment_id, case.step, case.decision)
    if case.mode == "unattended":
        # The unattended installer ran on the failed node; the configuration tool is manual.
        assert second.status == "failed", outcome_text(second)
        assert {c["key"].split(":")[0] for c in failing_checks(second)} >= {"configured"}
        configure_by_hand(store)
        second = decide(deployment_id, case.step, "retry")
    assert second.status == "succeeded", outcome_text(second)
    assert step_status(deployment_id, case.step) == "done"
    if case.mode == "unattended":  # the installer was started once per node, whatever happened
        for name, node in store.read()["nodes"].items():
            assert len(node.get("processes", {})) == (0 if name == "AMS1" else 1), name
    for script, counts in case.once.items():
        assert dict(lab_calls.count(script)) == counts, (script, lab_calls.count(script))


def _finished_with_a_warning(case: Case, deployment_id: int, first, store, lab_calls) -> None:
    """Faults that do not stop the step: it ends done, and says what it saw and what to do."""
    text = outcome_text(first)
    assert first.status == "succeeded", text
    if case.spec.startswith("slow:"):
        node = case.spec.split(":")[1]
        slow = [
            e
            for e in events_of(deployment_id, "node.progress")
            if e.node_name == node and "lab fault: slow node" in str(e.payload)
        ]
        assert len(slow) >= 2, "the slow node's progress records reach the live log"
        return
    for word in case.words:
        assert word in text, (word, text)
    warned = [
        c
        for c in (first.outcome or {}).get("checks") or []
        if c["status"] == "warn" and c["key"].startswith(case.check)
    ]
    assert warned and all(c["remediation"] for c in warned), text
    if case.spec.startswith("pending_reboot"):
        assert warned[0]["fix"]["id"] == "restart:AMS2" and warned[0]["fix"]["nodes"] == ["AMS2"]
    for script, counts in case.once.items():
        assert dict(lab_calls.count(script)) == counts, (script, lab_calls.count(script))
    if case.step == "prerequisites":  # cleared and checked again: the cause no longer warns
        # (the service account test still warns as on Windows as shipped: a gMSA has no "Log on as
        # a batch job" right, so the wizard cannot prove it there; that warning is not this fault's)
        _clear(store)
        again = start(deployment_id, case.step)
        assert again.status == "succeeded", outcome_text(again)
        left = [
            c
            for c in again.outcome["checks"]
            if c["status"] == "warn" and c["key"].startswith(case.check)
        ]
        assert not left, outcome_text(again)
