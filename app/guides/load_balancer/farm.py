"""What the load-balancer steps share: the farm's settings from the saved inputs, node names, and
small verdict helpers over ams_detect / lb_* output. Nothing here runs anything."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from app import validators
from app.guides.shared.checks import connection_check, split_sql_source
from app.steps import Check, RunView

LOCAL_SQL = (".", "(local)", "localhost", "127.0.0.1")
WEB_HEALTH = "/health-check"


@dataclass(frozen=True)
class Farm:
    """The values every node of the farm must share, as the operator entered them."""

    version: str
    account: str
    connection_string: str
    thumbprint: str
    port: int
    external_host_name: str
    web_app: bool
    agent_access: bool

    @classmethod
    def of(cls, view: RunView) -> Farm:
        prereq = view.all_inputs.get("prerequisites", {})
        first = view.all_inputs.get("first_node", {})
        host = view.all_inputs.get("host_config", {})
        try:
            version = validators.ams_version(str(prereq.get("ams_version") or ""))
        except ValueError:
            version = ""
        return cls(
            version=version,
            account=str(prereq.get("gmsa") or ""),
            connection_string=str(prereq.get("sql_connection_string") or ""),
            thumbprint=str(first.get("certificate_thumbprint") or "").replace(" ", "").upper(),
            port=int(first.get("https_port") or 443),
            external_host_name=str(host.get("external_host_name") or "").lower(),
            web_app=bool(host.get("web_app_enabled", True)),
            agent_access=bool(host.get("agent_access_enabled", True)),
        )

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0]) if self.version else 3

    @property
    def api_health(self) -> str:
        """The agent API's health page: api/v3.0 from version 3, api/v1.0 before."""
        return "/api/v3.0/health-check" if self.major >= 3 else "/api/v1.0/health-check"

    def health_paths(self) -> list[str]:
        """The pages a healthy node answers with 200 given its host configuration."""
        paths = [WEB_HEALTH] if self.web_app else []
        return paths + ([self.api_health] if self.agent_access else [])


def node_fqdn(view: RunView, node: str) -> str:
    """The node's DNS name in the deployment's domain (what the balancer's pool names)."""
    return f"{node}.{view.domain_fqdn}".lower()


def check(
    key: str, node: str | None, title: str, status: str, evidence: str, fix: str = ""
) -> Check:
    """A Check keyed `key:node` (or just `key`)."""
    return Check(f"{key}:{node}" if node else key, title, status, evidence, fix, node)


def install_checks(farm: Farm, node: str, data: dict) -> list[Check]:
    """An installed node as ams_detect read it, against the farm's settings."""
    found = []
    version = str(data.get("version") or data.get("uninstall_version") or "")
    with contextlib.suppress(ValueError):
        version = validators.ams_version(version)
    if farm.version and version != farm.version:
        found.append(
            check(
                "version",
                node,
                f"{node} runs version {version or 'unknown'}",
                "fail",
                f"The farm installs {farm.version}.",
                f"Install {farm.version} on {node}: every node of a farm runs the same version at "
                "all times, and version 2 and 3 nodes never run side by side.",
            )
        )
    service = data.get("service") or {}
    account = str(service.get("account") or "")
    if farm.account and account.lower() != farm.account.lower():
        found.append(
            check(
                "account",
                node,
                f"{node} runs the service as {account or 'an unknown account'}",
                "fail",
                f"The farm's account is {farm.account} (ObjectName of the lithnetams service).",
                "Every node must run as the same account: secrets in the shared database are "
                "protected for that account. Change it in the configuration tool (Host "
                "configuration, Service account) or reinstall, then retry.",
            )
        )
    wrong_database = connection_check(
        node,
        data.get("connection_string"),
        farm.connection_string,
        f"Every node must use '{farm.connection_string}'. Correct it in the configuration "
        "tool on the node, then retry.",
    )
    if wrong_database:
        found.append(wrong_database)
    server = str(data.get("sql_server") or "")
    host = split_sql_source(server)[0].lower() if server else ""
    if server and (host in LOCAL_SQL or host == node.lower()):
        found.append(
            check(
                "sql_express",
                node,
                f"{node} was installed against a local SQL Server ({server})",
                "fail",
                "Parameters\\SQLServer names the node itself: the installer put a SQL Express "
                "instance on it, which no other node can use.",
                f"Uninstall Access Manager and its SQL Express instance from {node} and install "
                "again choosing the shared SQL Server.",
            )
        )
    if int(data.get("configured") or 0) != 1:
        found.append(
            check(
                "configured",
                node,
                f"{node} has not been configured yet",
                "fail",
                "Registry value Configured is not 1: the service runs its placeholder host.",
                "Open the configuration tool on the node, complete it and save.",
            )
        )
    found += certificate_checks(farm, node, data)
    status = str(service.get("status") or "")
    if status and status != "Running":
        found.append(
            check(
                "service",
                node,
                f"The Access Manager service is {status} on {node}",
                "fail",
                "Service lithnetams is not running.",
                "Start it (Start-Service lithnetams). If it stops again, read the System event "
                "log: a service account that cannot log on leaves event 7038.",
            )
        )
    return found


def certificate_checks(farm: Farm, node: str, data: dict) -> list[Check]:
    """The chosen certificate is in the node's store, usable, and bound to the HTTPS port."""
    cert = data.get("certificate") or {}
    binding = data.get("binding") or {}
    if not farm.thumbprint:
        return []
    if not cert.get("present"):
        return [
            check(
                "certificate",
                node,
                f"Certificate {farm.thumbprint} is missing on {node}",
                "fail",
                "Not found in LocalMachine\\My.",
                "Import the farm's certificate with its private key into the computer's Personal "
                "store (certlm.msc) on every node, then retry.",
            )
        ]
    found = []
    if not cert.get("has_private_key"):
        found.append(
            check(
                "certificate_key",
                node,
                f"The certificate on {node} has no private key",
                "fail",
                str(cert.get("subject") or ""),
                "Import it from a .pfx file that holds the private key.",
            )
        )
    if cert.get("expired"):
        found.append(
            check(
                "certificate_expired",
                node,
                f"The certificate on {node} has expired",
                "fail",
                f"Valid until {cert.get('not_after')}.",
                "Renew it, with the same names, on every node.",
            )
        )
    bound = str(binding.get("thumbprint") or "").upper()
    if not binding.get("present") or bound != farm.thumbprint:
        found.append(
            check(
                "binding",
                node,
                f"Port {farm.port} on {node} is not bound to the farm's certificate",
                "fail",
                f"HTTP.sys 0.0.0.0:{farm.port}: "
                + (f"certificate {bound}" if binding.get("present") else "no binding")
                + f"; the farm uses {farm.thumbprint}.",
                "A balancer that passes TLS through shows clients whichever node answers, so "
                "every node must serve the same certificate. Select it on the configuration "
                "tool's Host configuration page and save, then retry.",
            )
        )
    return found
