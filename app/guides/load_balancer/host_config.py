"""Step 5: each node's own host configuration: web app, agent access, and the external host name
the balancer answers to (the only settings a farm does not share through its database).

Phases: "read" (lb_host_config_read on every node) -> "apply" (ams_set_host_config, which uses
the installed major version's own Set-AmsHostConfig parameters and restarts the service, only on
nodes that differ) -> "read_after" -> the verdict.
"""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField

from app import validators
from app.guides.load_balancer.farm import Farm, check
from app.guides.shared.flow import failure_checks, needs_attention, outputs
from app.steps import Action, Check, Finish, Phase, RunView, Step
from app.wizard.fields import Rule, TextField


def external_name(value: str) -> str:
    """A DNS name (not an address): agents and browsers must find it on the certificate."""
    name = validators.hostname(value)
    if name.replace(".", "").isdigit() or ":" in name:
        raise ValueError(
            "Enter the balancer's DNS name; an IP address cannot match the certificate."
        )
    return name


class HostConfigForm(FlaskForm):
    external_host_name = TextField(
        "External host name",
        [Rule(external_name)],
        description="The name the load balancer answers to, e.g. ams.corp.example.com; agents "
        "and users connect to it, and the certificate must name it.",
    )
    web_app_enabled = BooleanField("Users reach the web app on these nodes", default=True)
    agent_access_enabled = BooleanField("Agents reach these nodes (agent API)", default=True)


class HostConfig(Step):
    """Set the same external host name and services on every node; verify them."""

    key = "host_config"
    history_facts = {"name": "external_host_name"}
    title = "Host configuration"
    purpose = "Give every node the external host name of the balancer and the same services."
    guidance = (
        "The Host configuration page is the one part of Access Manager that each server keeps "
        "for itself. In a farm serving users and agents at one address, every node needs the "
        "balancer's name as its external host name, or agents registered against one node will "
        "not talk to another.",
        "The wizard reads each node and changes only the ones that differ (Set-AmsHostConfig, "
        "then a service restart on that node).",
    )
    form_class = HostConfigForm
    per_node_retry = True

    def preview(self, view: RunView) -> list[Phase]:
        return [_read(view, "read", view.node_names), _apply(view, view.node_names)]

    def advance(self, view: RunView) -> Phase | Finish:
        farm = Farm.of(view)
        if not farm.external_host_name:
            return needs_attention(
                "Enter the external host name.",
                [
                    check(
                        "input:external_host_name",
                        None,
                        "External host name",
                        "fail",
                        "No name was entered.",
                        "Enter the balancer's DNS name above and save.",
                    )
                ],
            )
        read = view.phase("read")
        if read is None:
            return _read(view, "read", view.node_names)
        differ = [n for n, d in outputs(read).items() if d.get("installed") and _differs(farm, d)]
        if differ and view.phase("apply") is None:
            return _apply(view, differ)
        if view.phase("apply") is not None and view.phase("read_after") is None:
            return _read(view, "read_after", view.node_names)
        return _verdict(view, farm)

    def drift_check(self, view: RunView) -> Phase | None:
        return _read(view, "read", view.node_names) if view.phase("read") is None else None


def _read(view: RunView, name: str, nodes: list[str]) -> Phase:
    farm = Farm.of(view)
    params = {"Port": farm.port, "ExternalHostName": farm.external_host_name}
    actions = tuple(
        Action(n, "lb_host_config_read", params, label=f"Host configuration of {n}") for n in nodes
    )
    title = "Read each node's host configuration" if name == "read" else "Read it again"
    return Phase(name, title, actions)


def _apply(view: RunView, nodes: list[str]) -> Phase:
    farm = Farm.of(view)
    params = {
        "WebAppEnabled": farm.web_app,
        "ApiEnabled": farm.agent_access,
        "HostName": farm.external_host_name,
        "ConnectionString": farm.connection_string,
    }
    actions = tuple(
        Action(n, "ams_set_host_config", params, label=f"Set the host configuration of {n}")
        for n in nodes
    )
    return Phase("apply", "Apply the host configuration", actions, changes_state=True)


def _differs(farm: Farm, data: dict) -> bool:
    return (
        str(data.get("external_host_name") or "").lower() != farm.external_host_name
        or bool(data.get("web_app_enabled")) != farm.web_app
        or (
            data.get("agent_access_enabled") is not None
            and bool(data.get("agent_access_enabled")) != farm.agent_access
        )
    )


def _verdict(view: RunView, farm: Farm) -> Finish:
    latest = {**outputs(view.phase("read")), **outputs(view.phase("read_after"))}
    found: list[Check] = []
    for name in ("read", "read_after"):
        found += [
            c
            for c in failure_checks(view.phase(name), "host_read", "Reading the host configuration")
            if c.node not in latest
        ]
    found += failure_checks(view.phase("apply"), "host_apply", "Set-AmsHostConfig")
    for node in view.node_names:
        data = latest.get(node)
        if data is None:
            continue
        if not data.get("installed"):
            found.append(
                check(
                    "installed",
                    node,
                    f"Access Manager is not installed on {node}",
                    "fail",
                    "Service lithnetams not found.",
                    "Finish the Remaining nodes step first.",
                )
            )
            continue
        if data.get("error"):
            found.append(
                check(
                    "host_config",
                    node,
                    f"Host configuration of {node}",
                    "fail",
                    str(data["error"]),
                    "Check that the LithnetAccessManager module was installed with the service.",
                )
            )
            continue
        if _differs(farm, data):
            found.append(
                check(
                    "host_config",
                    node,
                    f"Host configuration of {node} differs",
                    "fail",
                    f"External host name {data.get('external_host_name') or 'none'}, web app "
                    f"{data.get('web_app_enabled')}, agent access {data.get('agent_access_enabled')}.",
                    "The wizard could not apply it; read the error above and retry.",
                )
            )
        else:
            found.append(
                check(
                    "host_config",
                    node,
                    f"Host configuration of {node}",
                    "pass",
                    f"External host name {farm.external_host_name}; web app "
                    f"{'on' if farm.web_app else 'off'}, agent access "
                    f"{'on' if farm.agent_access else 'off'}.",
                )
            )
        if data.get("certificate_covers") is False:
            found.append(
                check(
                    "certificate_name",
                    node,
                    f"The certificate on {node} does not name {farm.external_host_name}",
                    "fail",
                    f"Certificate {data.get('binding_thumbprint')} does not cover the external host name.",
                    "Use a certificate whose subject alternative names include the balancer's name, on every node.",
                )
            )
        elif data.get("binding_thumbprint") is None:
            found.append(
                check(
                    "binding",
                    node,
                    f"No certificate is bound on {node}",
                    "fail",
                    f"Port {farm.port} has no HTTPS binding.",
                    "Select the farm's certificate in the configuration tool on the node.",
                )
            )
        if data.get("service_status") != "Running":
            found.append(
                check(
                    "service",
                    node,
                    f"The service is {data.get('service_status')} on {node}",
                    "fail",
                    "After the restart that applies the host configuration, lithnetams is not running.",
                    "Start the service and read its event log if it stops again.",
                )
            )
    artifacts = {
        "external_host_name": farm.external_host_name,
        "changed": sorted(outputs(view.phase("apply"))),
    }
    if any(c.status == "fail" for c in found):
        return needs_attention(
            "Some nodes do not have the farm's host configuration.", found, artifacts
        )
    changed = artifacts["changed"]
    summary = f"Every node answers as {farm.external_host_name}."
    summary += (
        f" Changed and restarted: {', '.join(changed)}." if changed else " Nothing needed changing."
    )
    return Finish("done", summary, tuple(found), (), artifacts)


STEP = HostConfig()
