"""Step 6: move the role to every node and prove the service answers there.

For each node in order: move_<node> (failover_move, run on that node) then probe_<node>
(failover_probe on that node). If the role ends on a node that failed, restore moves it back to
the first node that passed. The Finish carries a per-node table.
"""

from typing import Any

from flask_wtf import FlaskForm
from wtforms import IntegerField
from wtforms.validators import NumberRange

from app.formatting import duration
from app.guides.shared.flow import conclude, failures, one_action_phase, outputs
from app.steps import Action, Check, Finish, NodeInfo, Phase, RunView, Step


class FailoverTestForm(FlaskForm):
    """How long to wait for the role on each node."""

    move_timeout = IntegerField(
        "Seconds to wait for the role on each node", [NumberRange(10, 900)], default=120
    )


class FailoverTest(Step):
    """Move-ClusterGroup to each node in turn and check owner, state, service and health-check."""

    key = "failover_test"
    title = "Failover test"
    purpose = "Show that Access Manager starts and answers on every node, not just the first."
    guidance = (
        "The role is moved to each node in turn. On each one the wizard waits for the role to be "
        "online, checks that the node owns it and runs the service, and requests the health-check "
        "page through the access point name.",
    )
    form_class = FailoverTestForm

    def preview(self, view: RunView) -> list[Phase]:
        phases = []
        for node in view.nodes:
            phases += [_move(view, node.name, f"move_{node.name}"), _probe(view, node)]
        return [*phases, _move(view, view.first_node.name, "restore")]

    def advance(self, view: RunView) -> Phase | Finish:
        rows = []
        for node in view.nodes:
            move = view.phase(f"move_{node.name}")
            if move is None:
                return _move(view, node.name, f"move_{node.name}")
            moved = _moved(node.name, move)
            probe = view.phase(f"probe_{node.name}")
            if moved and probe is None:
                return _probe(view, node)
            rows.append(_row(node.name, move, probe if moved else None))
        restore = _restore_target(rows)
        if restore and view.phase("restore") is None:
            return _move(view, restore, "restore")
        return _finish(view, rows)


def _group(view: RunView) -> str:
    return str(view.all_inputs.get("cluster_role", {}).get("access_point_name", "")).upper()


def _move(view: RunView, node: str, name: str) -> Phase:
    wait = int(view.inputs.get("move_timeout") or 120)
    action = Action(
        node=node,
        script="failover_move",
        params={"Name": _group(view), "Node": node, "WaitSeconds": wait},
        label=f"Move-ClusterGroup {_group(view)} to {node}",
        timeout=wait + 60,
    )
    title = f"Move the role to {node}" if name != "restore" else f"Return the role to {node}"
    return one_action_phase(name, title, action, changes_state=True)


def _probe(view: RunView, node: NodeInfo) -> Phase:
    install = view.all_inputs.get("install_ams", {})
    action = Action(
        node=node.name,
        script="failover_probe",
        params={
            "HostName": f"{_group(view)}.{view.domain_fqdn}".lower(),
            "Port": int(install.get("https_port") or 443),
            "ValidateCertificate": bool(getattr(node, "cert_validation", True)),
        },
        label=f"Service and health-check with {node.name} as owner",
    )
    return one_action_phase(f"probe_{node.name}", f"Check Access Manager on {node.name}", action)


def _moved(node: str, move: dict) -> bool:
    data = outputs(move).get(node)
    return (
        bool(data)
        and data.get("state") == "Online"
        and str(data.get("owner")).upper() == node.upper()
    )


def _row(node: str, move: dict, probe: dict | None) -> dict[str, Any]:
    """One line of the failover table."""
    moved = outputs(move).get(node) or {}
    probed = outputs(probe).get(node) or {} if probe else {}
    error = next((r.error_message for r in failures(move).values()), None) or moved.get("error")
    if probe and failures(probe):
        error = error or next(r.error_message for r in failures(probe).values())
    row = {
        "node": node,
        "owner": moved.get("owner"),
        "owner_ok": str(moved.get("owner") or "").upper() == node.upper(),
        "state": moved.get("state"),
        "service_running": probed.get("service_status") == "Running",
        "health_status": probed.get("status_code"),
        "seconds": moved.get("elapsed_seconds"),
        "error": error or probed.get("error"),
    }
    row["passed"] = (
        row["owner_ok"]
        and row["state"] == "Online"
        and row["service_running"]
        and row["health_status"] == 200
    )
    return row


def _restore_target(rows: list[dict]) -> str | None:
    """Where to put the role back when the test left it on a node that failed."""
    passed = [r["node"] for r in rows if r["passed"]]
    return passed[0] if rows and not rows[-1]["passed"] and passed else None


def _finish(view: RunView, rows: list[dict]) -> Finish:
    checks = [_row_check(view, r) for r in rows]
    restore = view.phase("restore")
    if restore is not None:
        target = _restore_target(rows)
        ok = _moved(target, restore) if target else False
        checks.append(
            Check(
                key="restore",
                title=f"Role returned to {target}",
                status="pass" if ok else "warn",
                evidence=""
                if ok
                else "The role could not be moved back; move it in Failover Cluster Manager.",
                node=target,
            )
        )
    return conclude(
        f"Access Manager started and answered on all {len(rows)} nodes.",
        "Access Manager did not work on every node.",
        checks,
        {"failover_table": rows},
    )


def _row_check(view: RunView, row: dict) -> Check:
    node = row["node"]
    moved = f" after a move of {duration(row['seconds'])}" if row["seconds"] is not None else ""
    evidence = (
        f"Owner {row['owner']}, state {row['state']}{moved}, service "
        f"{'running' if row['service_running'] else 'not running'}, health-check "
        f"{row['health_status'] or 'no answer'}."
    )
    if row["error"]:
        evidence += f" Error: {row['error']}"
    return Check(
        key=f"failover:{node}",
        title=f"Access Manager on {node}",
        status="pass" if row["passed"] else "fail",
        evidence=evidence,
        remediation="" if row["passed"] else _remediation(view, row),
        node=node,
    )


def _remediation(view: RunView, row: dict) -> str:
    if not row["owner_ok"] or row["state"] != "Online":
        return (
            f"The role did not come online on {row['node']}. Check that lithnetams starts there "
            "(same gMSA, the certificate with its private key, SQL reachable), read the cluster "
            "log (Get-ClusterLog) and the 'Lithnet Access Manager' event log, then retry."
        )
    if not row["service_running"]:
        return (
            f"The cluster reports the role online but lithnetams is not running on {row['node']}."
        )
    return (
        f"The service runs on {row['node']} but "
        f"https://{_group(view)}.{view.domain_fqdn}/health-check "
        "did not answer 200: check the HTTPS binding and certificate on that node, DNS for the "
        "access point name, and that the web app is enabled."
    )


STEP = FailoverTest()
