"""Step 4: install Access Manager with identical settings on every node, then verify them.

detect (ams_detect on every node) -> install where missing (unattended: ams_install_start, then
poll_1..poll_N with ams_install_status; manual: a checklist and Retry) -> detect_after_install ->
host_config (ams_set_host_config where the web app, API or connection string differ) ->
detect_final -> per-node checks.

The unattended installer gets Lithnet's real MSI properties (USER_NAME, USER_PASSWORD, SQLSERVER,
INSTALL_SQL_EXPRESS=0, APPDIR, CONFIG_PATH, LOG_PATH) and is started outside the WinRM shell; the
installer writes no connection string, so the host configuration phase sets it. Where the license
is kept from 2.1 on (the database) cannot be read from a node: the operator confirms it instead.
"""

from dataclasses import dataclass
from typing import Any

from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, RadioField
from wtforms.validators import NumberRange

from app import validators
from app.guides.shared.checks import connection_check, same_connection, split_sql_source
from app.guides.shared.flow import (
    conclude,
    failure_checks,
    first_node,
    needs_attention,
    outputs,
    poll_results,
)
from app.steps import Action, Check, Finish, Phase, RunView, Step
from app.wizard.fields import Rule, TextField

INSTALL_DIR = "C:\\Windows\\Temp\\"
APP_DIR = "C:\\Program Files\\Lithnet\\Access Manager Service\\"
LOCAL_SQL = (".", "(local)", "localhost", "127.0.0.1")
POLL_SECONDS = 5.0
MAX_POLLS = 120
DETECTIONS = ("detect", "detect_after_install", "detect_final")


def _thumbprint(value: str) -> str:
    """A certificate thumbprint: 40 hexadecimal characters, spaces ignored."""
    cleaned = validators.plain_text(value, "Thumbprint", 80).replace(" ", "").upper()
    if len(cleaned) != 40 or any(c not in "0123456789ABCDEF" for c in cleaned):
        raise ValueError("A thumbprint is 40 hexadecimal characters (SHA-1), e.g. from certlm.msc.")
    return cleaned


_NOT_IN_FILE_NAMES = set('\\/:*?"<>|')


def _installer_file(value: str) -> str:
    """A file name in instance/installers: no folder, nothing Windows refuses in a file name."""
    name = validators.plain_text(value, "Installer file", 200)
    bad = sorted(_NOT_IN_FILE_NAMES.intersection(name))
    if bad:
        raise ValueError(
            f"An installer file name cannot contain {' '.join(bad)}; enter only the file's name, "
            "as placed in the wizard's instance/installers folder."
        )
    if name.rstrip(" .") != name:
        raise ValueError("An installer file name cannot end with a space or a dot.")
    return name


class InstallForm(FlaskForm):
    """How to install, and the settings every node must share."""

    install_mode = RadioField(
        "Installation",
        choices=[
            ("manual", "I run the installer on each node myself; the wizard verifies"),
            ("unattended", "The wizard copies and runs the installer (experimental)"),
        ],
        default="manual",
    )
    installer_name = TextField(
        "Installer file",
        [Rule(_installer_file, optional=True)],
        description="A file placed in the wizard's instance/installers folder.",
        # Only the unattended install copies a file (static/js/disclose.js; shown without JS).
        render_kw={"data-show-when": "install_mode=unattended"},
    )
    certificate_thumbprint = TextField("TLS certificate thumbprint", [Rule(_thumbprint)])
    https_port = IntegerField("HTTPS port", [NumberRange(1, 65535)], default=443)
    web_app_enabled = BooleanField("Enable the web app", default=True)
    api_enabled = BooleanField("Enable the API (agent access in version 3)", default=True)
    license_confirmed = BooleanField(
        "I entered the license key in the configuration tool on the first node",
        default=False,
        description="From version 2.1 Access Manager keeps the license in its database, which the "
        "wizard cannot read from a node; it asks you to confirm instead.",
    )


class InstallAms(Step):
    """Copy, install (or let the operator install), and verify identical configuration per node."""

    key = "install_ams"
    replay_to_verify = True
    title = "Install Access Manager"
    purpose = (
        "Install the Access Manager service on every node with the same account, database "
        "and certificate."
    )
    guidance = (
        "Every node must run the same version, as the same service account, against the same "
        "database, with the same TLS certificate. The wizard checks each of these on every node.",
        "Lithnet does not document a silent install, so the unattended option is experimental. "
        "The safe route is to run the installer and the configuration tool yourself and let the "
        "wizard verify the result.",
        "Choose the certificate and enter the license key in the configuration tool; the license "
        "is only needed on the first node. The wizard then checks that it sees both.",
    )
    form_class = InstallForm
    per_node_retry = True

    def preview(self, view: RunView) -> list[Phase]:
        settings = Settings.of(view)
        nodes = view.node_names
        phases = [_detect(view, "detect", nodes)]
        if settings.mode == "unattended":
            phases += [
                _install_start(settings, nodes),
                _poll(1, {n: {"process_id": 0, "log_path": settings.log_path} for n in nodes}),
                _detect(view, "detect_after_install", nodes),
            ]
        return [*phases, _host_config(settings, nodes), _detect(view, "detect_final", nodes)]

    def advance(self, view: RunView) -> Phase | Finish:
        settings = Settings.of(view)
        if view.phase("detect") is None:
            return _detect(view, "detect", view.node_names)
        latest = _latest_detection(view)
        missing = [n for n in view.node_names if n in latest and not latest[n].get("installed")]
        if missing and settings.mode == "unattended" and view.phase("detect_after_install") is None:
            if not settings.installer_name:
                return needs_attention(
                    "Choose the installer file for the unattended install.",
                    [_no_installer_check()],
                )
            return _install(view, settings, missing) or _detect(
                view, "detect_after_install", view.node_names
            )
        checks = _detection_failures(view)
        if view.phase("install_start") is not None:
            checks += _install_checks(view)
        checks += [_manual_install_check(view, settings, n) for n in missing]
        installed = {n: d for n, d in latest.items() if d.get("installed")}
        checks += [c for n, d in installed.items() for c in _node_checks(view, settings, n, d)]
        fix = [n for n, d in installed.items() if _host_config_differs(settings, d)]
        if fix and not missing and view.phase("host_config") is None:
            return _host_config(settings, fix)
        if view.phase("host_config") is not None and view.phase("detect_final") is None:
            return _detect(view, "detect_final", view.node_names)
        checks += failure_checks(view.phase("host_config"), "host_config", "Set-AmsHostConfig")
        return _finish(view, settings, checks, missing)


@dataclass(frozen=True)
class Settings:
    """What every node must share, from this step's form and the prerequisites step."""

    mode: str
    installer_name: str
    version: str
    account: str
    connection_string: str
    thumbprint: str
    port: int
    web_app: bool
    api: bool
    host_names: tuple[str, ...]
    license_confirmed: bool = False

    @classmethod
    def of(cls, view: RunView) -> "Settings":
        prereq = view.all_inputs.get("prerequisites", {})
        access_point = str(view.all_inputs.get("cluster_role", {}).get("access_point_name") or "")
        names = (access_point.upper(), f"{access_point}.{view.domain_fqdn}".lower())
        return cls(
            mode=view.inputs.get("install_mode") or "manual",
            installer_name=str(view.inputs.get("installer_name") or ""),
            version=_normal_version(prereq.get("ams_version")),
            account=str(prereq.get("gmsa") or ""),
            connection_string=str(prereq.get("sql_connection_string") or ""),
            thumbprint=str(view.inputs.get("certificate_thumbprint") or "")
            .replace(" ", "")
            .upper(),
            port=int(view.inputs.get("https_port") or 443),
            web_app=bool(view.inputs.get("web_app_enabled", True)),
            api=bool(view.inputs.get("api_enabled", True)),
            host_names=names if access_point else (),
            license_confirmed=bool(view.inputs.get("license_confirmed", False)),
        )

    @property
    def external_host_name(self) -> str:
        """The name clients use: the access point's FQDN."""
        return self.host_names[1] if len(self.host_names) > 1 else ""

    @property
    def sql_server(self) -> str:
        """The Data Source of the connection string (the installer's SQLSERVER)."""
        try:
            parts = validators.parse_connection_string(self.connection_string)
        except ValueError:
            return ""
        lowered = {k.lower(): v for k, v in parts.items()}
        return str(lowered.get("server") or lowered.get("data source") or "")

    def msi_properties(self) -> dict[str, str]:
        """Lithnet's installer properties; without INSTALL_SQL_EXPRESS=0 a silent install adds a
        local SQL Express instance to the node."""
        return {
            "USER_NAME": self.account,
            "USER_PASSWORD": "",  # a gMSA has no password
            "SQLSERVER": self.sql_server,
            "INSTALL_SQL_EXPRESS": "0",
            "APPDIR": APP_DIR,
            "CONFIG_PATH": APP_DIR + "config",
            "LOG_PATH": APP_DIR + "logs",
        }

    @property
    def installer_path(self) -> str:
        return INSTALL_DIR + self.installer_name

    @property
    def log_path(self) -> str:
        return INSTALL_DIR + f"LithnetAccessManagerService-{self.version or 'install'}.log"


def _normal_version(value: object) -> str:
    try:
        return validators.ams_version(str(value or ""))
    except ValueError:
        return ""


def _detect(view: RunView, name: str, nodes: list[str]) -> Phase:
    settings = Settings.of(view)
    params = {"Port": settings.port, "Thumbprint": settings.thumbprint}
    if settings.host_names:
        params["HostName"] = list(settings.host_names)
    titles = {
        "detect": "Detect Access Manager on every node",
        "detect_after_install": "Read the nodes after the installer ran",
        "detect_final": "Verify the host configuration",
    }
    actions = tuple(
        Action(node=n, script="ams_detect", params=params, label=f"Access Manager on {n}")
        for n in nodes
    )
    return Phase(name, titles[name], actions)


def _install_start(settings: Settings, nodes: list[str]) -> Phase:
    # The execution layer copies instance/installers/<installer_name> to InstallerPath first
    # (Action.upload, checksum verified on the node); the script refuses to start without it.
    params = {
        "InstallerPath": settings.installer_path,
        "LogPath": settings.log_path,
        "Properties": settings.msi_properties(),
    }
    actions = tuple(
        Action(
            node=n,
            script="ams_install_start",
            params=params,
            label=f"Copy and start the installer on {n}",
            upload=(settings.installer_name, settings.installer_path),
        )
        for n in nodes
    )
    return Phase("install_start", "Start the installer (experimental)", actions, changes_state=True)


def _poll(index: int, started: dict[str, dict]) -> Phase:
    actions = tuple(
        Action(
            node=n,
            script="ams_install_status",
            params={"ProcessId": int(data["process_id"]), "LogPath": str(data["log_path"])},
            label=f"Installer on {n}",
        )
        for n, data in started.items()
    )
    return Phase(f"poll_{index}", "Wait for the installer", actions, wait_before=POLL_SECONDS)


def _install(view: RunView, settings: Settings, missing: list[str]) -> Phase | None:
    """The next install phase, or None once every started installer has ended (or timed out)."""
    start = view.phase("install_start")
    if start is None:
        return _install_start(settings, missing)
    running = dict(outputs(start))
    polls = poll_results(view, "poll")
    for results in polls:
        for node, data in outputs(results).items():
            if not data.get("running"):
                running.pop(node, None)
    if running and len(polls) < MAX_POLLS:
        return _poll(len(polls) + 1, running)
    return None


def _install_checks(view: RunView) -> list[Check]:
    """Installer start failures, non-zero exit codes and installers still running at the end."""
    start = view.phase("install_start")
    checks = failure_checks(start, "install_start", "Starting the installer")
    last: dict[str, dict] = {}
    for results in poll_results(view, "poll"):
        last.update(outputs(results))
    for node in outputs(start):
        data = last.get(node, {})
        tail = "\n".join(data.get("log_tail") or [])
        if data.get("running", True):
            checks.append(
                Check(
                    key=f"install_timeout:{node}",
                    title=f"The installer is still running on {node}",
                    status="fail",
                    evidence=f"Still running after {MAX_POLLS * POLL_SECONDS:.0f} seconds.",
                    remediation="Wait for it to finish (Task Manager shows msiexec), then retry: "
                    "the wizard finds the running installer instead of starting another.",
                    node=node,
                )
            )
        elif not data.get("succeeded"):
            checks.append(
                Check(
                    key=f"install_exit:{node}",
                    title=f"The installer failed on {node}",
                    status="fail",
                    evidence=f"Exit code {data.get('exit_code')}. "
                    f"Log {data.get('log_path')}:\n{tail}",
                    remediation="Read the verbose log on the node (search for 'Return value 3'), "
                    "or install manually; then retry.",
                    node=node,
                )
            )
        elif data.get("reboot_required"):
            checks.append(
                Check(
                    key=f"install_reboot:{node}",
                    title=f"{node} needs a restart to finish the install",
                    status="warn",
                    evidence="Exit code 3010.",
                    remediation="Restart the node before the cluster role is created.",
                    node=node,
                )
            )
    return checks


def _latest_detection(view: RunView) -> dict[str, dict]:
    """Each node's most recent successful ams_detect output."""
    latest: dict[str, dict] = {}
    for name in DETECTIONS:
        latest.update(outputs(view.phase(name)))
    return latest


def _detection_failures(view: RunView) -> list[Check]:
    """Nodes that no detection could read."""
    latest = _latest_detection(view)
    checks = []
    for name in DETECTIONS:
        for check in failure_checks(view.phase(name), "detect", "Reading Access Manager"):
            if check.node not in latest and all(c.node != check.node for c in checks):
                checks.append(check)
    return checks


def _no_installer_check() -> Check:
    return Check(
        key="installer_name",
        title="No installer file chosen",
        status="fail",
        remediation="Place LithnetAccessManagerService-<version>-x64.exe in the wizard's "
        "instance/installers folder and enter its file name, or choose the manual install.",
    )


def _manual_install_check(view: RunView, settings: Settings, node: str) -> Check:
    first = node == first_node(view)
    steps = [
        f"On {node}, run LithnetAccessManagerService-{settings.version or '<version>'}-x64.exe.",
        f"Service account: {settings.account or 'the gMSA from the prerequisites'}.",
        f"Connection string: {settings.connection_string or 'the one from the prerequisites'}.",
        "Open the Lithnet Access Manager Configuration Tool; on Host configuration select the "
        f"certificate {settings.thumbprint or '<thumbprint>'} for port {settings.port}"
        f", web app {'on' if settings.web_app else 'off'}, API {'on' if settings.api else 'off'}.",
    ]
    if first:
        steps.append("On the Licensing page enter the Enterprise license key (first node only).")
    steps.append("Save, restart the service when asked, then press Retry here.")
    return Check(
        key=f"install:{node}",
        title=f"Access Manager is not installed on {node}",
        status="fail",
        evidence="Service lithnetams not found.",
        remediation=" ".join(f"{i}. {s}" for i, s in enumerate(steps, 1)),
        node=node,
        fix={"kind": "manual", "steps": steps},
    )


def _check(
    key: str, node: str, title: str, evidence: str, remediation: str, status="fail"
) -> Check:
    return Check(f"{key}:{node}", title, status, evidence, remediation, node)


def _node_checks(view: RunView, settings: Settings, node: str, data: dict) -> list[Check]:
    """Version, account, database, configuration, certificate, binding, host config, license."""
    checks = []
    version = _normal_version(data.get("version") or data.get("uninstall_version"))
    if settings.version and version != settings.version:
        checks.append(
            _check(
                "version",
                node,
                f"{node} runs version {version or 'unknown'}",
                f"Expected {settings.version} (registry Version / Uninstall DisplayVersion).",
                f"Install {settings.version} on {node}. Every node must run the same version; "
                "version 2 and version 3 nodes must never run at the same time.",
            )
        )
    account = str((data.get("service") or {}).get("account") or "")
    if settings.account and account.lower() != settings.account.lower():
        checks.append(
            _check(
                "account",
                node,
                f"{node} runs the service as {account or 'an unknown account'}",
                f"Expected {settings.account} (ObjectName of the lithnetams service).",
                "Every node must use the same account: its DPAPI-NG protected secrets are bound to "
                "it. Reinstall or change the account in the configuration tool.",
            )
        )
    wrong_database = connection_check(
        node,
        data.get("connection_string"),
        settings.connection_string,
        f"Set the connection string to '{settings.connection_string}' on {node} "
        "(configuration tool, or Set-AmsHostConfig -ConnectionString), then retry.",
    )
    if wrong_database:
        checks.append(wrong_database)
    if int(data.get("configured") or 0) != 1:
        checks.append(
            _check(
                "configured",
                node,
                f"{node} has not been configured yet",
                "Registry value Configured is not 1: the service runs its placeholder host.",
                "Open the configuration tool on the node, complete the host configuration "
                "and save.",
            )
        )
    checks += _certificate_checks(settings, node, data)
    checks += _host_config_checks(settings, node, data)
    checks += _sql_server_checks(settings, node, data)
    if node == first_node(view):
        checks.append(_license_check(settings, node, data.get("license") or {}))
    start_type = (data.get("service") or {}).get("start_type")
    checks.append(
        _check(
            "start_type",
            node,
            f"lithnetams starts {start_type or 'unknown'} on {node}",
            "Standalone it is Automatic; the cluster role makes it Manual on every node.",
            "",
            status="info",
        )
    )
    return checks


def _license_check(settings: Settings, node: str, found: dict) -> Check:
    """Found where the service reads it, confirmed by the operator, or a question."""
    title = f"License on {node}"
    if found.get("present"):
        return _check("license", node, title, f"Found in {found.get('source')}.", "", "pass")
    looked = ", ".join(found.get("checked") or ["Parameters\\LicenseData"])
    if settings.license_confirmed:
        return _check(
            "license",
            node,
            title,
            f"Confirmed by the operator; not readable from the node (looked in {looked}; from "
            "version 2.1 the license is kept in the database).",
            "",
            "info",
        )
    return _check(
        "license",
        node,
        f"Confirm the license on {node}",
        f"Not found where the node can read it (looked in {looked}). From version 2.1 Access "
        "Manager keeps the license in its database, so this is expected.",
        "Open the configuration tool on the first node, check the Licensing page shows the "
        "Enterprise license, tick 'I entered the license key' on this step, save and retry.",
    )


def _sql_server_checks(settings: Settings, node: str, data: dict) -> list[Check]:
    """The installer's SQLSERVER: a local instance means SQL Express was put on the node."""
    server = str(data.get("sql_server") or "")
    host = split_sql_source(server)[0].lower() if server else ""
    if not server or (host not in LOCAL_SQL and host != node.lower()):
        return []
    return [
        _check(
            "sql_express",
            node,
            f"{node} was installed against a local SQL Server ({server})",
            "Parameters\\SQLServer names this node: without INSTALL_SQL_EXPRESS=0 the installer "
            "adds a SQL Express instance, which no other node can share.",
            f"Uninstall Access Manager and the SQL Express instance AMS from {node}, then install "
            f"again against {settings.sql_server or 'the shared SQL Server'}.",
        )
    ]


def _certificate_checks(settings: Settings, node: str, data: dict) -> list[Check]:
    cert = data.get("certificate") or {}
    binding = data.get("binding") or {}
    checks = []
    if not cert.get("present"):
        return [
            _check(
                "certificate",
                node,
                f"Certificate {settings.thumbprint} is missing on {node}",
                "Not found in LocalMachine\\My.",
                "Import the same certificate, with its private key, into the computer's Personal "
                "store on every node (certlm.msc), then retry.",
            )
        ]
    if not cert.get("has_private_key"):
        checks.append(
            _check(
                "certificate_key",
                node,
                f"The certificate on {node} has no private key",
                cert.get("subject", ""),
                "Import the certificate from a .pfx with its private key.",
            )
        )
    if cert.get("expired"):
        checks.append(
            _check(
                "certificate_expired",
                node,
                f"The certificate on {node} has expired",
                f"Valid until {cert.get('not_after')}.",
                "Renew the certificate on every node.",
            )
        )
    covered = cert.get("covers") or {}
    if settings.host_names and not any(covered.get(h) for h in settings.host_names):
        checks.append(
            _check(
                "certificate_name",
                node,
                "The certificate does not cover the access point name",
                f"DNS names: {', '.join(cert.get('dns_names') or [])}.",
                f"Use a certificate whose subject alternative names include "
                f"{' or '.join(settings.host_names)}.",
            )
        )
    if (
        not binding.get("present")
        or str(binding.get("thumbprint") or "").upper() != settings.thumbprint
    ):
        checks.append(
            _check(
                "binding",
                node,
                f"Port {settings.port} is not bound to the chosen certificate",
                f"HTTP.sys 0.0.0.0:{settings.port}: "
                + (
                    f"certificate {binding.get('thumbprint')}"
                    if binding.get("present")
                    else "no binding"
                ),
                "In the configuration tool on the node, select the certificate on the Host "
                "configuration page and save.",
            )
        )
    return checks


def _host_config_differs(settings: Settings, data: dict) -> bool:
    config = data.get("host_config") or {}
    if not config.get("available"):
        return False
    api = config.get("api_enabled")
    wrong_database = bool(settings.connection_string) and not same_connection(
        data.get("connection_string"), settings.connection_string
    )
    return (
        bool(config.get("web_app_enabled")) != settings.web_app
        or (api is not None and bool(api) != settings.api)
        or wrong_database
    )


def _host_config_checks(settings: Settings, node: str, data: dict) -> list[Check]:
    config = data.get("host_config") or {}
    if not config.get("available"):
        return [
            _check(
                "host_config",
                node,
                f"The host configuration of {node} could not be read",
                config.get("error") or "Get-AmsHostConfig is not available.",
                "Check that the LithnetAccessManager module was installed with the service.",
                status="warn",
            )
        ]
    if not _host_config_differs(settings, data):
        return []
    return [
        _check(
            "host_config",
            node,
            f"Web app or API setting differs on {node}",
            f"Web app {config.get('web_app_enabled')}, API {config.get('api_enabled')}; "
            f"wanted web app {settings.web_app}, API {settings.api}.",
            "The wizard applies it with Set-AmsHostConfig and restarts the service; retry.",
        )
    ]


def _host_config(settings: Settings, nodes: list[str]) -> Phase:
    params = {
        "WebAppEnabled": settings.web_app,
        "ApiEnabled": settings.api,
        "HostName": settings.external_host_name,
        "ConnectionString": settings.connection_string,
    }
    actions = tuple(
        Action(node=n, script="ams_set_host_config", params=params, label=f"Host config on {n}")
        for n in nodes
    )
    return Phase("host_config", "Apply the host configuration", actions, changes_state=True)


def _finish(view: RunView, settings: Settings, checks: list[Check], missing: list[str]) -> Finish:
    artifacts: dict[str, Any] = {
        "install_mode": settings.mode,
        "nodes": {n: _node_summary(d) for n, d in _latest_detection(view).items()},
    }
    if missing:
        artifacts["manual_checklist"] = {c.node: c.fix["steps"] for c in checks if c.fix}
        first = first_node(view)
        order = (
            "Start with the first node (" + first + "), which takes the license. "
            if first in missing
            else ""
        )
        return needs_attention(
            f"Access Manager must be installed on {', '.join(missing)}. {order}"
            "Follow the checklist, then press Retry.",
            checks,
            artifacts,
        )
    summary = (
        f"Access Manager {settings.version} is installed with identical settings on every node."
    )
    if settings.mode == "unattended":
        summary += " The unattended install is experimental: review the results above."
    return conclude(
        summary, "Some nodes differ from the required configuration.", checks, artifacts
    )


def _node_summary(data: dict) -> dict:
    return {
        "version": data.get("version") or data.get("uninstall_version"),
        "account": (data.get("service") or {}).get("account"),
        "start_type": (data.get("service") or {}).get("start_type"),
        "thumbprint": (data.get("binding") or {}).get("thumbprint"),
        "license": (data.get("license") or {}).get("present"),
    }


STEP = InstallAms()
