"""Step 3: the first node, installed by the operator, configured and licensed, then verified.

Phases: "detect" (ams_detect on the first node) -> "health" (lb_health_probe at the node's own
name, once it is installed) -> the verdict. Lithnet documents no silent install, so the operator
runs the installer and the configuration tool; the wizard prints the checklist and verifies.
From 2.1 the license is kept in the database, which no node-side read can see: the operator
confirms it instead (the check says so, it never claims there is no license).
"""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField
from wtforms.validators import NumberRange

from app import validators
from app.guides.load_balancer.farm import WEB_HEALTH, Farm, check, install_checks, node_fqdn
from app.guides.shared.flow import failure_checks, first_node, needs_attention, outputs
from app.steps import Action, Check, Finish, Phase, RunView, Step
from app.wizard.fields import Rule, TextField


def thumbprint(value: str) -> str:
    """A certificate thumbprint: 40 hexadecimal characters, spaces ignored."""
    cleaned = validators.plain_text(value, "Thumbprint", 80).replace(" ", "").upper()
    if len(cleaned) != 40 or any(c not in "0123456789ABCDEF" for c in cleaned):
        raise ValueError("A thumbprint is 40 hexadecimal characters (SHA-1), e.g. from certlm.msc.")
    return cleaned


class FirstNodeForm(FlaskForm):
    """The certificate every node serves, its port, and the license confirmation."""

    certificate_thumbprint = TextField(
        "TLS certificate thumbprint",
        [Rule(thumbprint)],
        description="The one certificate every node serves; it must name the balancer's host name.",
    )
    https_port = IntegerField("HTTPS port", [NumberRange(1, 65535)], default=443)
    license_confirmed = BooleanField(
        "I entered the Enterprise license key in the configuration tool on the first node",
        default=False,
        description="From version 2.1 the license is kept in the database, which the wizard "
        "cannot read from a node.",
    )


class FirstNode(Step):
    """Verify the first node: version, account, database, certificate, service, license, health."""

    key = "first_node"
    title = "First node"
    purpose = "Install Access Manager on the first node, license it, and check that it serves."
    guidance = (
        "Install and configure one node completely before the others: it writes the farm's "
        "settings into the database, and the license key is entered here once for the whole farm.",
        "Use the service account and the connection string from the Prerequisites step, choose "
        "the farm's certificate on the Host configuration page, enter the license, save, and let "
        "the configuration tool restart the service. Then run this step: the wizard checks each "
        "setting and asks the node's own health-check page.",
    )
    form_class = FirstNodeForm

    def preview(self, view: RunView) -> list[Phase]:
        node = first_node(view)
        return [_detect(view, node), _health(view, node)]

    def advance(self, view: RunView) -> Phase | Finish:
        node = first_node(view)
        detect = view.phase("detect")
        if detect is None:
            return _detect(view, node)
        data = outputs(detect).get(node)
        if data is None:
            return needs_attention(
                f"Access Manager could not be read on {node}.",
                failure_checks(detect, "detect", "Reading Access Manager"),
            )
        farm = Farm.of(view)
        if not data.get("installed"):
            return needs_attention(
                f"Install Access Manager on {node}, then run this step again.",
                [manual_install_check(farm, node, first=True)],
                {"manual_checklist": {node: install_steps(farm, node, first=True)}},
            )
        if view.phase("health") is None:
            return _health(view, node)
        found = install_checks(farm, node, data)
        found.append(_license_check(view, node, data.get("license") or {}))
        found += health_checks(farm, view.phase("health") or {})
        artifacts = {
            "node": node,
            "version": data.get("version"),
            "account": (data.get("service") or {}).get("account"),
        }
        if any(c.status == "fail" for c in found):
            return needs_attention(f"The first node, {node}, is not ready yet.", found, artifacts)
        return Finish(
            "done",
            f"{node} runs Access Manager {data.get('version')} as {artifacts['account']}, serves "
            "the farm's certificate and answers its health check.",
            tuple(found),
            (),
            artifacts,
        )

    def drift_check(self, view: RunView) -> Phase | None:
        node = first_node(view)
        if view.phase("detect") is None:
            return _detect(view, node)
        if view.phase("health") is None and (outputs(view.phase("detect")).get(node) or {}).get(
            "installed"
        ):
            return _health(view, node)
        return None


def _detect(view: RunView, node: str) -> Phase:
    farm = Farm.of(view)
    params: dict = {"Port": farm.port, "Thumbprint": farm.thumbprint}
    if farm.external_host_name:
        params["HostName"] = [farm.external_host_name]
    return Phase(
        "detect",
        f"Read Access Manager on {node}",
        (Action(node, "ams_detect", params, label=f"Access Manager on {node}"),),
    )


def health_phase(view: RunView, nodes: list[str], paths: list[str] | None = None) -> Phase:
    """Each node asks its own health-check page(s), at its own name, over HTTPS (by default the
    pages its host configuration serves)."""
    farm = Farm.of(view)
    actions = tuple(
        Action(
            n,
            "lb_health_probe",
            {
                "HostName": node_fqdn(view, n),
                "Port": farm.port,
                "Paths": paths or farm.health_paths() or [WEB_HEALTH],
                "ValidateCertificate": False,
            },
            label=f"Health check of {n}",
        )
        for n in nodes
    )
    return Phase("health", "Ask each node's health-check page", actions)


def _health(view: RunView, node: str) -> Phase:
    # The web app's page only: agent access is set per node later, at Host configuration.
    return health_phase(view, [node], [WEB_HEALTH])


def health_checks(farm: Farm, results: dict) -> list[Check]:
    """Every page answered 200, served by the farm's certificate."""
    found = failure_checks(results, "health", "Health check")
    for node, data in outputs(results).items():
        for answer in data.get("answers") or []:
            path = str(answer.get("path"))
            status = answer.get("status_code")
            served = str(answer.get("thumbprint") or "").upper()
            if status != 200:
                verdict = (
                    "fail",
                    f"{answer.get('uri')}: {status or 'no answer'}"
                    + (f" ({answer.get('error')})" if answer.get("error") else "")
                    + f"; service {data.get('service_status')}.",
                    health_advice(status),
                )
            elif farm.thumbprint and served and served != farm.thumbprint:
                verdict = (
                    "fail",
                    f"Answered 200 with certificate {served}, not the farm's {farm.thumbprint}.",
                    "Bind the farm's certificate on the node (configuration tool, Host "
                    "configuration) and retry.",
                )
            else:
                verdict = (
                    "pass",
                    f"{answer.get('uri')} answered 200 in {answer.get('elapsed_ms')} ms.",
                    "",
                )
            found.append(check(f"health{path}", node, f"{path} on {node}", *verdict))
    return found


def health_advice(status: int | None) -> str:
    """What a health-check answer other than 200 usually means."""
    if status == 503:
        return (
            "The service runs but reports itself unhealthy: most often it cannot open its "
            "database from this node (check the SQL database step and the service's event log, "
            "'Lithnet Access Manager'), or it was never configured."
        )
    if status == 404:
        return (
            "The page is not served: the web app or agent access is turned off in this node's "
            "host configuration."
        )
    return (
        "Nothing answered over HTTPS: check that the service runs, that the HTTPS port is bound "
        "to a certificate (netsh http show sslcert) and that the local firewall allows it."
    )


def install_steps(farm: Farm, node: str, first: bool) -> list[str]:
    """The operator's checklist for one node."""
    steps = [
        f"On {node}, run LithnetAccessManagerService-{farm.version or '<version>'}-x64.exe.",
        f"Service account: {farm.account or 'the one from the Prerequisites step'}.",
        "Database: choose the existing SQL Server (not the built-in SQL Express) with the "
        f"connection string {farm.connection_string or 'from the Prerequisites step'}.",
        f"In the configuration tool, Host configuration: select the certificate "
        f"{farm.thumbprint or '<thumbprint>'} for HTTPS port {farm.port}.",
    ]
    if first:
        steps.append("Licensing: enter the Enterprise license key (this node only).")
    steps.append("Save, restart the service when asked, then run this step again.")
    return steps


def manual_install_check(farm: Farm, node: str, first: bool) -> Check:
    steps = install_steps(farm, node, first)
    return Check(
        f"install:{node}",
        f"Access Manager is not installed on {node}",
        "fail",
        "Service lithnetams not found.",
        " ".join(f"{i}. {s}" for i, s in enumerate(steps, 1)),
        node,
        {"kind": "manual", "steps": steps},
    )


def _license_check(view: RunView, node: str, found: dict) -> Check:
    title = f"License on {node}"
    if found.get("present"):
        return check("license", node, title, "pass", f"Found in {found.get('source')}.")
    looked = ", ".join(found.get("checked") or ["Parameters\\LicenseData"])
    if view.inputs.get("license_confirmed"):
        return check(
            "license",
            node,
            title,
            "info",
            f"Confirmed by you; not readable from the node (looked in {looked}; from 2.1 the "
            "license is kept in the database).",
        )
    return check(
        "license",
        node,
        f"Confirm the license on {node}",
        "fail",
        f"Not found where the node can read it (looked in {looked}). From 2.1 Access Manager "
        "keeps it in the database, so this is expected.",
        "Check that the configuration tool's Licensing page on this node shows the Enterprise "
        "license, tick the confirmation on this step, save and run it again.",
    )


STEP = FirstNode()
