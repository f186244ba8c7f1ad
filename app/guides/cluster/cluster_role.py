"""Step 5: create the Generic Service role for lithnetams and bring it online.

detect (role_detect) -> adopt (start with role_start if it is Failed or Offline), or stop on a
conflict -> create (role_create by the operator route: CredSSP or a scheduled task) -> wait_1..wait_N (role_wait)
until Online -> verify (ams_detect on every node:
start type Manual). A role that does not come online gets a diagnostics phase (role_diagnostics).
"""

from typing import Any

from flask_wtf import FlaskForm

from app import validators
from app.guides.cluster import addresses
from app.guides.shared.flow import (
    conclude,
    failure_checks,
    failures,
    is_double_hop,
    needs_attention,
    one_action_phase,
    outputs,
    point_to_address_field,
    poll_results,
)
from app.steps import Action, Check, Finish, Phase, RunView, Step
from app.wizard import route
from app.wizard.fields import Rule, TextField

WAIT_SECONDS = 60
MAX_WAITS = 5
SETTLED = ("Online", "Failed")
RESTARTABLE = ("Failed", "Offline", "PartialOnline")


class ClusterRoleForm(FlaskForm):
    """The client access point users will browse to."""

    access_point_name = TextField(
        "Client access point name",
        [Rule(lambda v: validators.netbios_name(v, "Access point name"))],
        description="Becomes the AD computer name and DNS name of the service.",
    )
    access_point_address = TextField(
        "Client access point IP address",
        [Rule(lambda v: validators.static_address(v, what="Access point address"))],
    )


class ClusterRole(Step):
    """Add-ClusterGenericServiceRole without storage or registry checkpoints; wait for Online."""

    key = "cluster_role"
    replay_to_verify = True
    title = "Cluster role"
    purpose = "Let the cluster own the Access Manager service under one name and address."
    guidance = (
        "The role is a Generic Service for lithnetams with its own name and IP address. Access "
        "Manager 2 and later keep their settings in SQL Server, so the role needs no shared disk "
        "and no registry replication.",
        "Once clustered, the service starts only where the cluster places it; its start type "
        "becomes Manual on every node.",
    )
    form_class = ClusterRoleForm

    def cross_check(self, deployment, data: dict, probed) -> dict[str, str]:
        return addresses.cross_check(deployment, data, probed)

    def preview(self, view: RunView) -> list[Phase]:
        return [
            self._detect(view),
            self._create(view),
            self._start(view),
            self._wait(view, 1),
            self._verify(view),
            self._diagnostics(view),
        ]

    def advance(self, view: RunView) -> Phase | Finish:
        detect = view.phase("detect")
        if detect is None:
            return self._detect(view)
        if failures(detect):
            return needs_attention(
                "The cluster roles could not be read.",
                failure_checks(detect, "detect", "Reading the cluster roles"),
            )
        found = outputs(detect)[view.first_node.name]
        role = next(
            (r for r in found.get("roles") or [] if r["group"].upper() == _name(view)), None
        )
        conflict = None if role else _conflict(view, found)
        if conflict is not None:
            return conflict
        method = "adopted" if role else _method(view)
        if role is None:
            create = view.phase("create")
            if create is None:
                return self._create(view)
            if failures(create):
                checks = point_to_address_field(
                    failure_checks(create, "create", "Creating the role"),
                    "access_point_address",
                    "Client access point IP address",
                )
                return self._failed(view, checks, method)
            role = outputs(create)[view.first_node.name]
        elif role.get("state") in RESTARTABLE:
            # An existing role left Failed or Offline (e.g. by an earlier attempt whose cause
            # has been fixed since): bring it online again instead of reporting the old state.
            start = view.phase("start")
            if start is None:
                return self._start(view)
            if failures(start):
                return self._failed(
                    view, failure_checks(start, "start", "Starting the role"), method
                )
        status = _latest_status(view, role)
        waits = poll_results(view, "wait")
        if status.get("state") not in SETTLED and len(waits) < MAX_WAITS:
            return self._wait(view, len(waits) + 1)
        if status.get("state") != "Online":
            return self._failed(view, [_not_online(view, status, waits)], method, status)
        verify = view.phase("verify")
        if verify is None:
            return self._verify(view)
        checks = [_owner_check(view, status)]
        checks += failure_checks(verify, "verify", "Reading the lithnetams service")
        checks += [c for n, d in outputs(verify).items() for c in _service_checks(n, d, status)]
        adopted = ""
        if method == "adopted":
            adopted = (
                " (existing role brought online again)."
                if view.phase("start") is not None
                else " (existing role adopted)."
            )
        return conclude(
            f"Role {_name(view)} is Online on {status.get('owner')}" + (adopted or "."),
            f"Role {_name(view)} is online but not every node is ready for failover.",
            checks + _address_checks(view, role),
            _artifacts(view, method, status),
        )

    def _failed(
        self, view: RunView, checks: list[Check], method: str, status: dict | None = None
    ) -> Phase | Finish:
        """Gather diagnostics once (unless the cause is the double hop), then stop."""
        create = view.phase("create")
        double_hop = any(is_double_hop(r) for r in failures(create).values())
        diagnostics = view.phase("diagnostics")
        if diagnostics is None and not double_hop:
            return self._diagnostics(view)
        artifacts = _artifacts(view, method, status or {})
        artifacts["diagnostics"] = outputs(diagnostics)
        checks = checks + _diagnostic_checks(outputs(diagnostics))
        return needs_attention(f"Role {_name(view)} is not online.", checks, artifacts)

    def _detect(self, view: RunView) -> Phase:
        action = Action(
            node=view.first_node.name,
            script="role_detect",
            params={"Name": _name(view)},
            label="Find a role for lithnetams",
        )
        return one_action_phase("detect", "Detect an existing role", action)

    def _create(self, view: RunView) -> Phase:
        params = {
            "Name": _name(view),
            "StaticAddress": view.inputs.get("access_point_address", ""),
        }
        action = route.as_operator(
            view.first_node,
            "role_create",
            params,
            label="Add-ClusterGenericServiceRole",
            timeout=900,
        )
        return one_action_phase("create", "Create the role", action, changes_state=True)

    def _start(self, view: RunView) -> Phase:
        action = Action(
            node=view.first_node.name,
            script="role_start",
            params={"Name": _name(view), "TimeoutSeconds": WAIT_SECONDS},
            label=f"Start-ClusterGroup {_name(view)}",
            timeout=WAIT_SECONDS + 60,
        )
        return one_action_phase("start", "Bring the role online", action, changes_state=True)

    def _wait(self, view: RunView, index: int) -> Phase:
        action = Action(
            node=view.first_node.name,
            script="role_wait",
            params={"Name": _name(view), "TimeoutSeconds": WAIT_SECONDS},
            label=f"Wait for {_name(view)} to come online",
            timeout=WAIT_SECONDS + 60,
        )
        return one_action_phase(f"wait_{index}", "Wait for the role", action)

    def _verify(self, view: RunView) -> Phase:
        install = view.all_inputs.get("install_ams", {})
        params = {
            "Port": int(install.get("https_port") or 443),
            "Thumbprint": str(install.get("certificate_thumbprint") or "").upper(),
        }
        actions = tuple(
            Action(node=n, script="ams_detect", params=params, label=f"lithnetams on {n}")
            for n in view.node_names
        )
        return Phase("verify", "Verify the service on every node", actions)

    def _diagnostics(self, view: RunView) -> Phase:
        actions = tuple(
            route.as_operator(
                node,
                "role_diagnostics",
                {"Name": _name(view)},
                label=f"Cluster log and events on {node.name}",
                timeout=300,
            )
            for node in view.nodes
        )
        return Phase("diagnostics", "Gather diagnostics", actions)


def _name(view: RunView) -> str:
    return str(view.inputs.get("access_point_name", "")).upper()


def _method(view: RunView) -> str:
    return "credssp" if route.delegates(view.first_node) else "scheduled_task"


def _conflict(view: RunView, found: dict) -> Finish | None:
    """lithnetams clustered under another name, or the name taken by another group."""
    roles = found.get("roles") or []
    if roles:
        other = roles[0]
        return needs_attention(
            f"lithnetams is already clustered as role {other['group']}.",
            [
                Check(
                    key="role_name",
                    title=f"lithnetams already belongs to role {other['group']}",
                    status="fail",
                    evidence=f"Owner {other.get('owner')}, state {other.get('state')}.",
                    remediation=f"Enter {other['group']} as the access point name to adopt that "
                    "role, or remove it in Failover Cluster Manager, then retry.",
                )
            ],
        )
    taken = found.get("name_in_use")
    if taken:
        kinds = ", ".join(sorted({r["type"] for r in taken.get("resources") or []}))
        return needs_attention(
            f"A cluster group named {_name(view)} already exists.",
            [
                Check(
                    key="name_in_use",
                    title=f"The name {_name(view)} is used by another cluster group",
                    status="fail",
                    evidence=f"Group {taken['group']} holds: {kinds or 'no resources'}.",
                    remediation="Choose another access point name, or remove that group, "
                    "then retry.",
                )
            ],
        )
    return None


def _latest_status(view: RunView, role: dict) -> dict:
    """The role's state from the last wait, else from detection or creation."""
    status = {k: role.get(k) for k in ("group", "owner", "state")}
    started = outputs(view.phase("start")).get(view.first_node.name, {})
    status.update({k: started[k] for k in ("group", "owner", "state") if k in started})
    for results in poll_results(view, "wait"):
        status.update(outputs(results).get(view.first_node.name, {}))
    return status


def _not_online(view: RunView, status: dict, waits: list) -> Check:
    waited = len(waits) * WAIT_SECONDS
    return Check(
        key="role_state",
        title=f"Role {_name(view)} is {status.get('state') or 'unknown'}",
        status="fail",
        evidence=f"Owner {status.get('owner')}; waited about {waited} seconds.",
        remediation="Read the cluster log lines and Access Manager events below. Usual causes: "
        "the service account cannot start the service on that node, the certificate or its "
        "binding is missing there, or the database is unreachable. Fix it, then retry.",
        node=status.get("owner"),
    )


def _owner_check(view: RunView, status: dict) -> Check:
    owner = str(status.get("owner") or "")
    ok = owner.upper() in {n.upper() for n in view.node_names}
    return Check(
        key="role_owner",
        title=f"Role owned by {owner or 'no node'}",
        status="pass" if ok else "fail",
        evidence=f"State {status.get('state')}.",
        remediation=""
        if ok
        else "The owner is not one of this deployment's nodes; move the role "
        "(Move-ClusterGroup) to a deployment node, then retry.",
        node=owner or None,
    )


def _service_checks(node: str, data: dict, status: dict) -> list[Check]:
    service = data.get("service") or {}
    checks = []
    if service.get("start_type") != "Manual":
        checks.append(
            Check(
                key=f"start_type:{node}",
                title=f"lithnetams starts {service.get('start_type') or 'unknown'} on {node}",
                status="fail",
                evidence="A clustered service must have start type Manual (the cluster starts it).",
                remediation=f"On {node}: Set-Service -Name lithnetams -StartupType Manual, then "
                "retry.",
                node=node,
            )
        )
    running = service.get("status") == "Running"
    owner = node.upper() == str(status.get("owner") or "").upper()
    if running and not owner:
        checks.append(
            Check(
                key=f"running_elsewhere:{node}",
                title=f"lithnetams also runs on {node}",
                status="warn",
                evidence=f"The role is owned by {status.get('owner')}.",
                remediation=f"Stop the service on {node}; only the owner should run it.",
                node=node,
            )
        )
    return checks


def _address_checks(view: RunView, role: dict) -> list[Check]:
    wanted = str(view.inputs.get("access_point_address") or "")
    seen = role.get("address")
    if not seen or seen == wanted:
        return []
    return [
        Check(
            key="role_address",
            title="The role has another address than the one entered",
            status="warn",
            evidence=f"IP address {seen}; entered {wanted}.",
            remediation="The existing address is kept; update DNS records or the entry if needed.",
        )
    ]


def _diagnostic_checks(diagnostics: dict[str, dict]) -> list[Check]:
    checks = []
    for node, data in diagnostics.items():
        lines = data.get("cluster_log") or []
        events = [e for e in data.get("events") or [] if e.get("level") in ("Error", "Warning")]
        if not lines and not events:
            continue
        evidence = "\n".join(
            lines[-10:]
            + [
                f"{e.get('time')} {e.get('level')} {e.get('id')}: {e.get('message')}"
                for e in events[:5]
            ]
        )
        checks.append(
            Check(
                key=f"diagnostics:{node}",
                title=f"Cluster log and Access Manager events on {node}",
                status="info",
                evidence=evidence,
                node=node,
            )
        )
    return checks


def _artifacts(view: RunView, method: str, status: dict) -> dict[str, Any]:
    return {
        "method": method,
        "group": _name(view),
        "owner": status.get("owner"),
        "state": status.get("state"),
    }


STEP = ClusterRole()
