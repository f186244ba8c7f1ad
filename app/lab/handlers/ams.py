"""Lab models of the Access Manager scripts: ams_detect, the installer start/status pair and
ams_set_host_config, plus `apply_configuration_tool`, what the operator's manual work in the AMS
configuration tool leaves on a node (for the lab CLI to call).

Lab-only node keys (added with setdefault): `processes` {pid: installer run}, `ams_host_config`
{web_app_enabled, api_enabled, host_name}, `license_in_database`. The installer follows Lithnet's
property table (rule msi_properties, `scenarios.run_installer`); a process started inside the
WinRM shell dies with it (rule shell_job). The service reads its license from
Parameters\\LicenseData or appsettings.json (2.0); from 2.1 the configuration tool keeps it in the
database, which no node-side read can see (rule ams_settings_location).
"""

from __future__ import annotations

import ntpath
import re
from datetime import UTC, datetime

from app.lab.context import ScriptContext, ScriptFailure
from app.lab.files import find_file
from app.lab.handlers import handler
from app.lab.scenarios import (
    AMS_APPID,
    AMS_KEY,
    AMS_PARAMETERS_KEY,
    AMS_PRODUCT,
    AMS_SERVICE,
    AMS_SERVICE_KEY,
    KNOWN_VERSIONS,
    find_node,
    parse_iso,
    run_installer,
)

INSTALL_POLLS = 2  # status calls before the simulated installer finishes
DEFAULT_HOST_CONFIG = {"web_app_enabled": True, "api_enabled": False}
NO_MODULE = (
    "Import-Module : The specified module 'LithnetAccessManager' was not loaded because no valid "
    "module file was found in any module directory."
)


def covers(name: str, dns_names: list[str]) -> bool:
    """Whether a certificate's DNS names cover a host name (one-label wildcards allowed)."""
    name = name.lower()
    for dns in (d.lower() for d in dns_names):
        if dns == name or (dns.startswith("*.") and name.partition(".")[2] == dns[2:]):
            return True
    return False


@handler("ams_detect")
def ams_detect(ctx: ScriptContext) -> dict:
    """Service, registry, Uninstall entry, HTTP.sys binding, certificate, host config, license."""
    node = find_node(ctx.store.read(), ctx.node)
    port = int(ctx.params.get("Port") or 443)
    base = node["registry"].get(AMS_KEY) or {}
    parameters = node["registry"].get(AMS_PARAMETERS_KEY) or {}
    service = node["services"].get(AMS_SERVICE)
    product = next((p for p in node.get("products", []) if p["name"] == AMS_PRODUCT), None)
    binding = node.get("http_bindings", {}).get(f"0.0.0.0:{port}")
    return {
        "computer": node["name"],
        "installed": service is not None,
        "service": service
        and {
            "status": service["status"],
            "start_type": service["start_type"],
            "account": (node["registry"].get(AMS_SERVICE_KEY) or {}).get("ObjectName"),
            "display_name": service["display_name"],
        },
        "version": base.get("Version"),
        "uninstall_version": product and product["version"],
        "install_path": base.get("Path"),
        "configured": int(base.get("Configured") or 0),
        "connection_string": parameters.get("ConnectionString"),
        "sql_server": parameters.get("SQLServer"),
        "binding": {
            "port": port,
            "present": binding is not None,
            "thumbprint": binding and binding["thumbprint"].upper(),
            "app_id": binding and binding.get("appid"),
        },
        "certificate": _certificate(node, ctx.params),
        "host_config": _host_config(node, service),
        "license": _license(node, parameters),
    }


def _license(node: dict, parameters: dict) -> dict:
    """Parameters\\LicenseData, then Licensing.Data in appsettings.json; else unknown."""
    checked = ["Parameters\\LicenseData"]
    if parameters.get("LicenseData"):
        return {"present": True, "source": "registry", "checked": checked}
    config = parameters.get("ConfigPath")
    if config:
        path = ntpath.join(config, "appsettings.json")
        checked.append(path)
        settings = find_file(node.get("files", {}), path)
        if settings and (settings.get("licensing_data")):
            return {"present": True, "source": "appsettings.json", "checked": checked}
    return {"present": None, "source": None, "checked": checked}


def _certificate(node: dict, params: dict) -> dict | None:
    thumbprint = str(params.get("Thumbprint") or "").upper()
    if not thumbprint:
        return None
    cert = next(
        (c for c in node.get("certificates", []) if c["thumbprint"].upper() == thumbprint), None
    )
    if cert is None:
        return {"thumbprint": thumbprint, "present": False}
    names = list(cert.get("dns_names", []))
    return {
        "thumbprint": thumbprint,
        "present": True,
        "subject": cert.get("subject"),
        "not_after": cert.get("not_after"),
        "expired": parse_iso(cert["not_after"]) < datetime.now(UTC),
        "has_private_key": bool(cert.get("has_private_key")),
        "dns_names": names,
        "covers": {h: covers(h, names) for h in params.get("HostName") or []},
    }


def _host_config(node: dict, service: dict | None) -> dict:
    if service is None:
        return {"available": False, "web_app_enabled": None, "api_enabled": None, "error": None}
    config = node.get("ams_host_config") or DEFAULT_HOST_CONFIG
    return {
        "available": True,
        "web_app_enabled": config.get("web_app_enabled"),
        "api_enabled": config.get("api_enabled"),
        "error": None,
    }


@handler("ams_install_start")
def ams_install_start(ctx: ScriptContext) -> dict:
    """Start the installer (it must have been copied to the node); a second start reuses the run."""
    path = str(ctx.params["InstallerPath"])
    log_path = str(ctx.params["LogPath"])
    properties = dict(ctx.params.get("Properties") or {})
    values = [path, log_path, *map(str, properties.values())]
    if any(c in v for v in values for c in '"\r\n'):
        raise ScriptFailure("Installer arguments must not contain double quotes or line breaks.")
    for name in properties:
        if not re.fullmatch(r"[A-Z][A-Z0-9_]{0,63}", str(name)):
            raise ScriptFailure(f"'{name}' is not a public MSI property name.")
    with ctx.store.transaction() as state:
        node = find_node(state, ctx.node)
        if find_file(node.get("files", {}), path) is None:
            raise ScriptFailure(
                f"The installer was not found at '{path}'. It must be copied to the node before "
                "this step runs."
            )
        processes = node.setdefault("processes", {})
        for pid, run in processes.items():
            if run["running"] and run["log_path"].lower() == log_path.lower():
                return _started(int(pid), True, ctx.params)
        pid = 4200 + 4 * len(processes)
        processes[str(pid)] = ctx.start_process(
            {
                "image": path,
                "log_path": log_path,
                "version": _installer_version(state, ctx.node, path),
                "properties": properties,
                "polls_left": INSTALL_POLLS,
                "running": True,
                "exit_code": None,
                "log": [],
            }
        )
    ctx.progress("Access Manager installer", "Starting", 5)
    return _started(pid, False, ctx.params)


def _started(pid: int, already: bool, params: dict) -> dict:
    return {
        "process_id": pid,
        "already_running": already,
        "log_path": params["LogPath"],
        "installer_path": params["InstallerPath"],
    }


def _installer_version(state: dict, node: str, path: str) -> str | None:
    """The version this installer file carries; the version_mismatch fault swaps it on its node."""
    file_name = ntpath.basename(path).lower()
    version = next(
        (v for v, i in state.get("installers", {}).items() if i["file_name"].lower() == file_name),
        None,
    )
    for spec in state.get("faults", {}).get("applied", []):
        kind, *args = spec.split(":")
        if kind == "version_mismatch" and args and args[0].upper() == node.upper() and version:
            other = args[1] if len(args) > 1 and args[1] else None
            return other or next(v for v in KNOWN_VERSIONS if v != version)
    return version


@handler("ams_install_status")
def ams_install_status(ctx: ScriptContext) -> dict:
    """Advance the simulated installer one poll; on its last poll it installs the service."""
    pid = str(ctx.params["ProcessId"])
    log_path = str(ctx.params["LogPath"])
    with ctx.store.transaction() as state:
        node = find_node(state, ctx.node)
        run = node.get("processes", {}).get(pid)
        if run is None or run["log_path"].lower() != log_path.lower():
            return _status(pid, False, None, [], log_path)
        if run["running"] and not ctx.process_alive(run):
            # Rule shell_job: the shell that started it closed, and its job object took the
            # installer with it, half-way, with no result in the log.
            run.update(running=False, killed=True)
            run["log"].append("=== Logging stopped abruptly (the process was terminated) ===")
        if run["running"]:
            run["polls_left"] -= 1
            if run["polls_left"] <= 0:
                _finish_install(state, node, run)
        lines = _log_lines(run)
    if run["running"]:
        ctx.progress("Access Manager installer", "Running", 50)
    return _status(pid, run["running"], run["exit_code"], lines, log_path)


def _finish_install(state: dict, node: dict, run: dict) -> None:
    run["running"] = False
    if run["version"] is None:
        run["exit_code"] = 1603
        return
    code, log = run_installer(node, run["version"], run.get("properties") or {}, state=state)
    run["log"].extend(log)
    if code == 0:
        node["ams_host_config"] = dict(DEFAULT_HOST_CONFIG)
    run["exit_code"] = code


def _log_lines(run: dict) -> list[str]:
    lines = [f"=== Verbose logging started: {run['image']} ===", *run.get("log", [])]
    if run["exit_code"] is not None:
        lines.append(f"MSI (s): Installation success or error status: {run['exit_code']}.")
    return lines


def _status(pid: str, running: bool, code: int | None, lines: list[str], log_path: str) -> dict:
    return {
        "process_id": int(pid),
        "running": running,
        "exit_code": code,
        "succeeded": code in (0, 3010),
        "reboot_required": code == 3010,
        "log_path": log_path,
        "log_tail": lines,
    }


# Set-AmsHostConfig's own parameters by major version (rule host_config_by_version).
HOST_CONFIG_PARAMETERS = {
    2: (
        "WebAppEnabled",
        "ApiEnabled",
        "ApiHostname",
        "ConnectionString",
        "SkipConnectionStringValidation",
    ),
    3: (
        "WebAppEnabled",
        "AgentAccessEnabled",
        "ExternalHostname",
        "ConnectionString",
        "SkipConnectionStringValidation",
    ),
}


def host_config_calls(text: str) -> list[list[str]]:
    """The parameter names of each Set-AmsHostConfig call in the script text (backtick line
    continuations joined)."""
    joined = re.sub(r"`\r?\n", " ", text)
    calls = []
    for match in re.finditer(r"Set-AmsHostConfig\b([^\r\n;|}]*)", joined, flags=re.IGNORECASE):
        calls.append(re.findall(r"(?<![\w$])-([A-Za-z]\w*)", match.group(1)))
    return calls


def bind_host_config(text: str, major: int) -> None:
    """Rule host_config_by_version: PowerShell binds only the installed module's parameters. A
    script with no call that binds on this version fails the way PowerShell does."""
    known = {p.lower() for p in HOST_CONFIG_PARAMETERS[major]}
    calls = host_config_calls(text)
    if any(all(name.lower() in known for name in call) for call in calls):
        return
    if not calls:
        raise ScriptFailure("The script does not call Set-AmsHostConfig.")
    unknown = next(name for call in calls for name in call if name.lower() not in known)
    raise ScriptFailure(
        f"Set-AmsHostConfig : A parameter cannot be found that matches parameter name '{unknown}'."
    )


@handler("ams_set_host_config", reaches=("sql",))
def ams_set_host_config(ctx: ScriptContext) -> dict:
    """Set-AmsHostConfig with the installed major version's parameters, then a restart.

    The script skips the connection string validation, which would sign in to SQL Server as the
    caller (rule second_hop); a script that validated would fail here without delegation."""
    hop = ctx.hop_error("sql")
    if "-SkipConnectionStringValidation" not in ctx.text and hop:
        raise ScriptFailure(f"Set-AmsHostConfig : {hop}")
    with ctx.store.transaction() as state:
        node = find_node(state, ctx.node)
        service = node["services"].get(AMS_SERVICE)
        if service is None:
            raise ScriptFailure(NO_MODULE)
        version = str((node["registry"].get(AMS_KEY) or {}).get("Version") or "2")
        major = 3 if int(version.split(".")[0]) >= 3 else 2
        bind_host_config(ctx.text, major)
        config = node.setdefault("ams_host_config", dict(DEFAULT_HOST_CONFIG))
        config["web_app_enabled"] = bool(ctx.params["WebAppEnabled"])
        config["api_enabled"] = bool(ctx.params["ApiEnabled"])
        config["host_name"] = str(ctx.params["HostName"])
        config["parameters"] = list(HOST_CONFIG_PARAMETERS[major])
        node["registry"].setdefault(AMS_PARAMETERS_KEY, {})["ConnectionString"] = str(
            ctx.params["ConnectionString"]
        )
        restarted = service["status"] == "Running"
    return {
        "version": version,
        "web_app_enabled": bool(ctx.params["WebAppEnabled"]),
        "api_enabled": bool(ctx.params["ApiEnabled"]),
        "host_name": str(ctx.params["HostName"]),
        "restarted": restarted,
    }


def apply_configuration_tool(
    node: dict, thumbprint: str, port: int = 443, license_data: str | None = None
) -> None:
    """What the operator does in the configuration tool: bind the certificate, save, license."""
    node.setdefault("http_bindings", {})[f"0.0.0.0:{port}"] = {
        "thumbprint": thumbprint.upper(),
        "appid": AMS_APPID,
    }
    base = node["registry"].setdefault(AMS_KEY, {})
    base["Configured"] = 1
    base["CertBinding"] = f"0.0.0.0:{port}"
    if license_data:
        version = tuple(int(p) for p in str(base.get("Version") or "2.1").split(".")[:2])
        if version >= (2, 1):  # Lithnet's docs: from 2.1 the license lives in the database
            node["license_in_database"] = True
        else:
            node["registry"].setdefault(AMS_PARAMETERS_KEY, {})["LicenseData"] = license_data
