"""A cluster deployment completed on seeded runs: each step's run with the artifacts the real
steps record and the scripts' JSON output on each action, settled through the real
settle_deployment; shared by the Summary deliverable tests of both guides."""

from datetime import timedelta

from app.events.publish import publish, publish_many
from app.execution.machine.finishing import settle_deployment
from app.extensions import db
from app.models import Deployment, NodeAction, StepRun, utcnow
from tests.handover.helpers import DEPLOYMENT, deployment, user

CANARY = "CANARY-sql-p4ss-0e1b"
NODES = ["AMS1", "AMS2", "AMS3"]
CONNECTION = f"Server=SQL1;Database=AccessManager;User ID=ams;Password={CANARY}"
INPUTS = {
    "prerequisites": {"ams_version": "3.0.1", "gmsa": "CORP\\gmsa-ams$"},
    "base_cluster": {"cluster_name": "AMSCLU", "cluster_address": "10.0.0.50"},
    "quorum": {"witness_type": "file_share", "share_path": "\\\\FS1\\witness"},
    "cluster_role": {"access_point_name": "AMSWEB", "access_point_address": "10.0.0.51"},
}


def _node(name: str, port: int) -> dict:
    return {**DEPLOYMENT["nodes"][0], "name": name, "port": port}


def _action(run, node, phase, script, data, start, seconds=2.0):
    run.actions.append(
        NodeAction(
            node_name=node,
            phase=phase,
            script=script,
            status="succeeded",
            result={"data": data},
            started_at=start,
            finished_at=start + timedelta(seconds=seconds),
        )
    )


def _run(dep_id, step_key, actor, start, artifacts, summary="Done."):
    run = StepRun(
        deployment_id=dep_id,
        step_key=step_key,
        attempt=1,
        status="succeeded",
        actor_id=actor,
        outcome={"status": "done", "summary": summary, "checks": [], "artifacts": artifacts},
        started_at=start,
        finished_at=start + timedelta(seconds=30),
    )
    db.session.add(run)
    return run


def _failover_row(node: str, passed: bool = True) -> dict:
    return {
        "node": node,
        "owner": node,
        "owner_ok": passed,
        "state": "Online" if passed else "Failed",
        "service_running": passed,
        "health_status": 200 if passed else None,
        "seconds": 6.000000000000001,
        "error": None if passed else "The role did not come online.",
        "passed": passed,
    }


def completed(app, nodes=NODES, excluded=(), failover_fails=()) -> int:
    """A deployment that went through every step on `nodes` (minus `excluded`, excluded earlier)
    and completed through settle_deployment."""
    owner = user(app, "alice", "operator")
    ports = {n: 55985 + i for i, n in enumerate(nodes)}
    dep_id = deployment(app, "alice", name="Payroll AMS", nodes=[_node(n, ports[n]) for n in nodes])
    with app.app_context():
        dep = db.session.get(Deployment, dep_id)
        for key, values in INPUTS.items():
            dep.step(key).inputs = values
        for node in dep.nodes:
            if node.name in excluded:
                node.excluded, node.exclude_reason = True, "Disk controller failed"
        active = [n for n in nodes if n not in excluded]
        start = utcnow() - timedelta(hours=1)
        _run(dep_id, "prerequisites", owner, start, {"installed_versions": {}})
        base = _run(
            dep_id,
            "base_cluster",
            owner,
            start + timedelta(minutes=5),
            {"method": "scheduled_task", "cluster_name": "AMSCLU"},
        )
        members = [{"name": n, "state": "Up"} for n in active]
        for n in active:
            detected = {"exists": True, "name": "AMSCLU", "address": "10.0.0.50", "nodes": members}
            _action(base, n, "verify", "cluster_detect", detected, start + timedelta(minutes=6))
        quorum = {
            "quorum_type": "Majority",
            "witness_kind": "File Share Quorum Witness",
            "witness_state": "Online",
            "share_path": "\\\\FS1\\witness",
            "node_count": len(active),
        }
        _run(
            dep_id,
            "quorum",
            owner,
            start + timedelta(minutes=10),
            {"quorum": quorum, "changed": True},
        )
        per_node = {
            n: {"version": "3.0.1", "account": "CORP\\gmsa-ams$", "start_type": "Automatic"}
            for n in active
        }
        install = _run(
            dep_id,
            "install_ams",
            owner,
            start + timedelta(minutes=15),
            {"install_mode": "manual", "nodes": per_node},
        )
        for n in active:
            detected = {
                "version": "3.0.1",
                "service": {"account": "CORP\\gmsa-ams$", "start_type": "Automatic"},
                "connection_string": CONNECTION,
            }
            _action(install, n, "detect_final", "ams_detect", detected, start)
        role = _run(
            dep_id,
            "cluster_role",
            owner,
            start + timedelta(minutes=20),
            {"method": "scheduled_task", "group": "AMSWEB", "owner": active[0], "state": "Online"},
        )
        _action(role, active[0], "detect", "role_detect", {"roles": [], "nodes": members}, start)
        for n in active:
            detected = {"service": {"account": "CORP\\gmsa-ams$", "start_type": "Manual"}}
            _action(role, n, "verify", "ams_detect", detected, start + timedelta(minutes=21))
        rows = [_failover_row(n, n not in failover_fails) for n in active]
        test = _run(
            dep_id,
            "failover_test",
            owner,
            start + timedelta(minutes=25),
            {"failover_table": rows},
        )
        for i, row in enumerate(rows):
            moved = {"owner": row["owner"], "state": row["state"], "elapsed_seconds": 6.0}
            at = start + timedelta(minutes=26 + i)
            _action(test, row["node"], f"move_{row['node']}", "failover_move", moved, at)
        for key in ("prerequisites", "base_cluster", "quorum", "install_ams", "cluster_role"):
            dep.step(key).status = "done"
        dep.step("failover_test").status = "done"
        extra = settle_deployment(dep, "failover_test", paused=False)
        publish_many(dep_id, extra)  # commits, as finish() does
        assert dep.status == "completed" and [e["kind"] for e in extra] == ["deployment.completed"]
        if excluded:
            publish(
                dep_id,
                "nodes.excluded",
                {"nodes": list(excluded), "reason": "Disk controller failed"},
                step_key="prerequisites",
                actor_id=owner,
            )
    return dep_id
