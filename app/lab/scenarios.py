"""The simulated Windows world behind the lab: one JSON dict, built-in scenarios and fault specs.

Every handler reads and changes this dict through `ctx.store`; nothing here touches the network.
All values are plain JSON (str, int, float, bool, None, list, dict); times are ISO-8601 UTC strings
("2026-11-25T10:00:00Z") computed relative to the moment a scenario is built, so a scenario is
reproducible: the same names and the same clock give the same state.

State schema (version 1)::

    schema: 1
    scenario: str                       name or file the state was built from
    generated_at: iso                   the "now" the relative times were computed from
    suggested_inputs: {...}             form values that pass every check in this world
    domain:
      fqdn, netbios, dn                 "corp.example.test", "CORP", "DC=corp,DC=example,DC=test"
      domain_controllers: [{name, fqdn, os, version, site}]
      kds_root_keys: [{key_id, created, effective_time}]
      gmsas: {sam: {name, sam, dn, dns_host_name, enabled, account_not_delegated,
                    principals_allowed: [sam], spns: [str], member_of: [group], encryption: [..]}}
      groups: {name: {members: [sam]}}
      computers: {NAME: {sam, dns_host_name, dn, enabled}}
      operator_can_create_computers: bool
    nodes: {NAME: {
      name, fqdn, domain, ip_address, prefix_length (its subnet, 24 if absent), boot_time, restart_at (iso; a scheduled restart ends the
      shells opened before it), down_until (iso|None; the server refuses new connections until
      then), boot_count (the server counts modelled restarts),
      os: {caption, version, build},
      features: {"Failover-Clustering": bool, "RSAT-AD-PowerShell": bool},
      policy: {stored_passwords_allowed: bool, batch_logon: [principal]}  (rule task_logon)
      winrm: {credssp: bool}          Service\\Auth\\CredSSP (rule credssp_server; absent = off)
      services: {name: {display_name, start_type, status, account, image_path}},
      registry: {"HKLM\\...": {value: data}}   (a key with {} exists but has no values)
      certificates: [{thumbprint, subject, dns_names, not_after, has_private_key}]  (Cert:\\LM\\My)
      http_bindings: {"0.0.0.0:443": {thumbprint, appid}},
      files: {path: {...}}            written by the protocol layer (Client.copy) and installers
      products: [{name, version}]     the Uninstall entries
      pending_reboot: bool
      event_log: [{log, source, id, level, time, message}]
    }}
    sql: {server, fqdn, instance, port, edition, engine_edition, version, product_name,
          databases: {name: {owner, created}},
          logins: {login: {type, default_db, roles: {database: [role]}}},
          reachable_from: {NODE: bool}}
    cluster: None | {name, fqdn, address, nodes: {NAME: "Up"|"Down"|"Paused"|"Joining"},
                     quorum: {type, witness: None|{kind, path?, account?}},
                     groups: {name: {owner, state, preferred_owners: [NODE],
                                     resources: [{name, type, state, parameters: {}}]}},
                     validation_reports: [{created, result, path}]}
    file_shares: {"\\\\FS1\\witness": {server, writable_by: [principal]}}
    installers: {version: {file_name, msi, product, api}}
    faults:
      unreachable: [NODE], auth_failure: [NODE], slow: {NODE: seconds},        protocol level,
      reboot_mid_action: {NODE: script}, crash_halfway: {NODE: script}         read by dispatch
      test_cluster: None|"warn"|"fail", role_fails_on: [NODE]                  read by handlers
      applied: [spec]                   every spec applied, in order
      undo: [{path: [key...], value?, absent?}]   what domain-level faults replaced
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
AMS_SERVICE = "lithnetams"
AMS_DISPLAY_NAME = "Lithnet Access Manager Service"
AMS_PRODUCT = "Lithnet Access Manager Service"
AMS_APPID = "{4C3E21BA-7BEF-46C8-BC85-A4407DB6F596}"
AMS_KEY = "HKLM\\SOFTWARE\\Lithnet\\Access Manager Service"
AMS_PARAMETERS_KEY = AMS_KEY + "\\Parameters"
AMS_SERVICE_KEY = "HKLM\\SYSTEM\\CurrentControlSet\\Services\\lithnetams"
AMS_FOLDER = "C:\\Program Files\\Lithnet\\Access Manager Service\\"
CBS_REBOOT_KEY = (
    "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Component Based Servicing\\RebootPending"
)
WU_REBOOT_KEY = (
    "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\WindowsUpdate\\Auto Update\\RebootRequired"
)
FEATURE = "Failover-Clustering"
LAB_PREFIX_LENGTH = 24  # the nodes' subnet: 10.20.0.0/24
KDS_DELAY = timedelta(hours=10)
KNOWN_VERSIONS = ("2.1.1069.0", "3.0.1638.0")
# Holders of "Log on as a batch job" on a Windows Server member server as it ships.
DEFAULT_BATCH_LOGON = (
    "BUILTIN\\Administrators",
    "BUILTIN\\Backup Operators",
    "BUILTIN\\Performance Log Users",
)

_PROTOCOL_FAULTS = ("unreachable", "auth_failure", "slow", "reboot_mid_action", "crash_halfway")


def iso(moment: datetime) -> str:
    """A UTC timestamp in the state's format."""
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    """The inverse of `iso` (also accepts +00:00 offsets)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _thumbprint(seed: str) -> str:
    return hashlib.sha1(seed.encode("utf-8")).hexdigest().upper()  # noqa: S324 - a label, not security


def _guid(seed: str) -> str:
    h = hashlib.sha256(seed.encode("utf-8")).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def default_node_names(count: int = 2) -> list[str]:
    """AMS1..AMSn, the names the lab uses when none are given."""
    return [f"AMS{i}" for i in range(1, count + 1)]


# ---------------------------------------------------------------------------------------------
# The default (happy) world
# ---------------------------------------------------------------------------------------------


def default_state(node_names: list[str], now: datetime | None = None) -> dict:
    """A clean happy path: prerequisites pass, no cluster yet, nothing of AMS installed; a load
    balancer in front of the nodes (only the load-balancer guide uses it)."""
    now = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    names = [n.upper() for n in node_names] or default_node_names()
    domain = _domain(names, now)
    state = {
        "schema": SCHEMA_VERSION,
        "scenario": "default",
        "generated_at": iso(now),
        "suggested_inputs": _suggested_inputs(domain),
        "domain": domain,
        "nodes": {name: _node(name, i, domain, now) for i, name in enumerate(names)},
        "sql": _sql(names, domain, now),
        "cluster": None,
        "file_shares": {
            "\\\\FS1\\witness": {"server": "FS1", "writable_by": ["CORP\\Domain Computers"]}
        },
        "installers": {v: _installer(v) for v in KNOWN_VERSIONS},
        "faults": empty_faults(),
    }
    state["balancer"] = balancer_record(state)
    state["suggested_inputs"].update(
        external_host_name=state["balancer"]["fqdn"],
        balancer_address=state["balancer"]["fqdn"],
        known_proxies=BALANCER_ADDRESS,
    )
    return state


def empty_faults() -> dict:
    """The faults section with nothing injected."""
    return {
        "unreachable": [],
        "auth_failure": [],
        "slow": {},
        "reboot_mid_action": {},
        "crash_halfway": {},
        "test_cluster": None,
        "role_fails_on": [],
        "applied": [],
        "undo": [],
    }


def _suggested_inputs(domain: dict) -> dict:
    return {
        "ams_version": KNOWN_VERSIONS[0],
        "gmsa": f"{domain['netbios']}\\svc-ams$",
        "sql_connection_string": (
            f"Server=sql1.{domain['fqdn']};Database=AccessManager;Integrated Security=true"
        ),
        "cluster_name": "AMSCLU",
        "cluster_address": "10.20.0.50",
        "access_point_name": "AMSWEB",
        "access_point_address": "10.20.0.51",
        "share_path": "\\\\FS1\\witness",
        "certificate_thumbprint": _thumbprint("lab-certificate:AMSWEB"),
    }


def _domain(names: list[str], now: datetime) -> dict:
    fqdn, netbios = "corp.example.test", "CORP"
    dn = "DC=corp,DC=example,DC=test"
    computers = {
        name: _computer(name, fqdn, f"OU=Servers,{dn}") for name in [*names, "SQL1", "FS1"]
    }
    computers["DC1"] = _computer("DC1", fqdn, f"OU=Domain Controllers,{dn}")
    return {
        "fqdn": fqdn,
        "netbios": netbios,
        "dn": dn,
        "domain_controllers": [
            {
                "name": "DC1",
                "fqdn": f"dc1.{fqdn}",
                "os": "Windows Server 2019 Datacenter",
                "version": "10.0 (17763)",
                "site": "Default-First-Site-Name",
            }
        ],
        "kds_root_keys": [_kds_key("default", now - timedelta(days=30))],
        "gmsas": {"svc-ams$": _gmsa("svc-ams", fqdn, dn, [f"{n}$" for n in names])},
        "groups": {
            "Domain Admins": {"members": ["Administrator"]},
            "Domain Computers": {"members": [f"{n}$" for n in [*names, "SQL1", "FS1"]]},
            "Windows Authorization Access Group": {"members": ["svc-ams$"]},
            "Access Control Assistance Operators": {"members": ["svc-ams$"]},
        },
        "computers": computers,
        "operator_can_create_computers": True,
    }


def _computer(name: str, fqdn: str, ou: str) -> dict:
    return {
        "sam": f"{name}$",
        "dns_host_name": f"{name.lower()}.{fqdn}",
        "dn": f"CN={name},{ou}",
        "enabled": True,
    }


def _kds_key(seed: str, effective: datetime) -> dict:
    return {
        "key_id": _guid(f"kds:{seed}:{iso(effective)}"),
        "created": iso(effective),
        "effective_time": iso(effective),
    }


def _gmsa(name: str, fqdn: str, dn: str, principals: list[str]) -> dict:
    return {
        "name": name,
        "sam": f"{name}$",
        "dn": f"CN={name},CN=Managed Service Accounts,{dn}",
        "dns_host_name": f"{name}.{fqdn}",
        "enabled": True,
        "account_not_delegated": True,
        "principals_allowed": principals,
        "spns": [],
        "member_of": ["Windows Authorization Access Group", "Access Control Assistance Operators"],
        "encryption": ["AES128", "AES256"],
    }


def _node(name: str, index: int, domain: dict, now: datetime) -> dict:
    fqdn = f"{name.lower()}.{domain['fqdn']}"
    access_point = "amsweb"
    return {
        "name": name,
        "fqdn": fqdn,
        "domain": domain["fqdn"],
        "ip_address": f"10.20.0.{11 + index}",
        "prefix_length": LAB_PREFIX_LENGTH,
        "boot_time": iso(now - timedelta(days=3, minutes=index)),
        "down_until": None,
        "os": {
            "caption": "Microsoft Windows Server 2019 Datacenter",
            "version": "10.0.17763",
            "build": "17763",
        },
        # A member server as it ships: the ActiveDirectory module is a separate feature (rule
        # ad_module); "Log on as a batch job" has Windows' default holders (rule task_logon).
        "features": {FEATURE: True, "RSAT-AD-PowerShell": False},
        "policy": {"stored_passwords_allowed": True, "batch_logon": list(DEFAULT_BATCH_LOGON)},
        # WinRM's service accepts CredSSP only after Enable-WSManCredSSP -Role Server (rule
        # credssp_server).
        "winrm": {"credssp": False},
        "services": _base_services(cluster_feature=True),
        "registry": {
            "HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion": {
                "ProductName": "Windows Server 2019 Datacenter",
                "CurrentBuild": "17763",
            },
            "HKLM\\SYSTEM\\CurrentControlSet\\Control\\Session Manager": {},
        },
        "certificates": [
            {
                "thumbprint": _thumbprint(f"lab-certificate:{access_point.upper()}"),
                "subject": f"CN={access_point}.{domain['fqdn']}",
                "dns_names": [f"{access_point}.{domain['fqdn']}", access_point.upper()],
                "not_after": iso(now + timedelta(days=365)),
                "has_private_key": True,
            }
        ],
        "http_bindings": {},
        "files": {},
        "products": [],
        "pending_reboot": False,
        "event_log": [],
    }


def _base_services(cluster_feature: bool) -> dict:
    services = {
        "WinRM": _service(
            "Windows Remote Management (WS-Management)",
            "Automatic",
            "Running",
            "NT AUTHORITY\\NetworkService",
            "C:\\Windows\\System32\\svchost.exe -k NetworkService",
        ),
        "http": _service("HTTP Service", "Manual", "Running", "", "system32\\drivers\\HTTP.sys"),
    }
    if cluster_feature:
        services["ClusSvc"] = cluster_service()
    return services


def _service(display: str, start: str, status: str, account: str, image: str) -> dict:
    return {
        "display_name": display,
        "start_type": start,
        "status": status,
        "account": account,
        "image_path": image,
    }


def cluster_service() -> dict:
    """The Cluster Service as Install-WindowsFeature leaves it before any cluster exists."""
    return _service(
        "Cluster Service", "Disabled", "Stopped", "LocalSystem", "C:\\Windows\\Cluster\\clussvc.exe"
    )


def _sql(names: list[str], domain: dict, now: datetime) -> dict:
    login = f"{domain['netbios']}\\svc-ams$"
    return {
        "server": "SQL1",
        "fqdn": f"sql1.{domain['fqdn']}",
        "instance": "MSSQLSERVER",
        "port": 1433,
        "edition": "Enterprise Edition: Core-based Licensing (64-bit)",
        "engine_edition": 3,
        "version": "15.0.4375.4",
        "product_name": "Microsoft SQL Server 2019",
        "databases": {
            "master": {"owner": "sa", "created": "2003-04-08T09:13:36Z"},
            "AccessManager": {
                "owner": f"{domain['netbios']}\\sqladmin",
                "created": iso(now - timedelta(days=2)),
            },
        },
        "logins": {
            login: {
                "type": "windows",
                "default_db": "AccessManager",
                "roles": {"AccessManager": ["db_owner"]},
            },
        },
        "reachable_from": dict.fromkeys(names, True),
    }


def _installer(version: str) -> dict:
    major = int(version.split(".")[0])
    return {
        "file_name": f"LithnetAccessManagerService-{version}-x64.exe",
        "msi": "Lithnet.AccessManager.Service.Setup.msi",
        "product": AMS_PRODUCT,
        "api": "api/v3.0" if major >= 3 else "api/v1.0",
    }


# The public properties of Access Manager's installer and their defaults (lithnet/access-manager,
# installer .aip Property table, branch role-jit; rule msi_properties). Any other property is
# accepted by msiexec and ignored. CONFIG_PATH and LOG_PATH default below APPDIR.
MSI_PROPERTIES = {
    "USER_NAME": "",
    "USER_PASSWORD": "",
    "SQLSERVER": ".\\AMS",
    "INSTALL_SQL_EXPRESS": "1",
    "APPDIR": AMS_FOLDER,
    "CONFIG_PATH": "",
    "LOG_PATH": "",
    "AMS_ADMINS_SID": "",
}
SQL_EXPRESS_SERVICE = "MSSQL$AMS"
SQL_EXPRESS_PRODUCT = "Microsoft SQL Server 2019 Express"


def run_installer(
    node: dict,
    version: str,
    properties: dict,
    now: datetime | None = None,
    state: dict | None = None,
) -> tuple[int, list[str]]:
    """What Access Manager's installer does with these properties: (exit code, log lines).

    Unknown properties are logged and ignored; INSTALL_SQL_EXPRESS defaults to 1 and installs a
    local SQL Express instance `.\\AMS`; the registry gets the values Lithnet's installer writes
    (rule ams_settings_location: no ConnectionString, which the configuration tool or
    Set-AmsHostConfig writes). Given the world (`state`), the service starts only when its account
    can log on there: a gMSA before its KDS root key is usable cannot (service_can_log_on)."""
    now = now or datetime.now(UTC)
    given = {str(k).upper(): "" if v is None else str(v) for k, v in (properties or {}).items()}
    log = [
        f"Property(C): {k} = {'**********' if k == 'USER_PASSWORD' else v}"
        for k, v in given.items()
    ]
    log += [
        f"Property {k} is not used by this product; ignored."
        for k in given
        if k not in MSI_PROPERTIES
    ]
    effective = {**MSI_PROPERTIES, **{k: v for k, v in given.items() if k in MSI_PROPERTIES}}
    folder = effective["APPDIR"] or AMS_FOLDER
    folder = folder if folder.endswith("\\") else folder + "\\"
    if not effective["USER_NAME"]:
        log.append(
            "CustomAction InstallService returned actual error code 1 (setup install-service: "
            "no service account given)."
        )
        return 1603, log
    if effective["INSTALL_SQL_EXPRESS"] == "1":
        node["services"][SQL_EXPRESS_SERVICE] = _service(
            "SQL Server (AMS)",
            "Automatic",
            "Running",
            "NT Service\\MSSQL$AMS",
            '"C:\\Program Files\\Microsoft SQL Server\\MSSQL15.AMS\\MSSQL\\Binn\\sqlservr.exe" -sAMS',
        )
        node["products"] = [p for p in node["products"] if p["name"] != SQL_EXPRESS_PRODUCT]
        node["products"].append({"name": SQL_EXPRESS_PRODUCT, "version": "15.0.2000.5"})
        log.append("Installing prerequisite: SQL Server 2019 Express, instance AMS.")
    account = effective["USER_NAME"]
    starts = state is None or service_can_log_on(state, node, account)
    node["services"][AMS_SERVICE] = _service(
        AMS_DISPLAY_NAME,
        "Automatic",
        "Running" if starts else "Stopped",
        account,
        f'"{folder}Lithnet.AccessManager.Service.exe"',
    )
    node["registry"][AMS_KEY] = {"Path": folder, "Version": version, "Configured": 0}
    parameters = {
        "SQLServer": effective["SQLSERVER"],
        "ConfigPath": effective["CONFIG_PATH"] or folder + "config",
        "LogPath": effective["LOG_PATH"] or folder + "logs",
    }
    if effective["AMS_ADMINS_SID"]:
        parameters["AMSAdmins"] = effective["AMS_ADMINS_SID"]
    node["registry"][AMS_PARAMETERS_KEY] = parameters
    node["registry"][AMS_SERVICE_KEY] = {"ObjectName": account, "Start": 2}
    node["products"] = [p for p in node["products"] if p["name"] != AMS_PRODUCT]
    node["products"].append({"name": AMS_PRODUCT, "version": version})
    node["event_log"].append(
        {
            "log": "Lithnet Access Manager",
            "source": "Lithnet Access Manager Service",
            "id": 1,
            "level": "Information",
            "time": iso(now),
            "message": f"Service {version} started.",
        }
        if starts
        else logon_failure_event(account, now)
    )
    return 0, log


def logon_failure_event(account: str, now: datetime | None = None) -> dict:
    """The System log entry of a service that could not log on as its account (error 1069)."""
    return {
        "log": "System",
        "source": "Service Control Manager",
        "id": 7038,
        "level": "Error",
        "time": iso(now or datetime.now(UTC)),
        "message": (
            f"The {AMS_SERVICE} service was unable to log on as {account} with the currently "
            "configured password due to the following error: The service did not start due to "
            "a logon failure."
        ),
    }


def install_properties(account: str, connection_string: str) -> dict:
    """The properties a correct silent install passes (what the product's install step sends)."""
    server = ""
    for part in connection_string.split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() in ("server", "data source"):
            server = value.strip()
    return {
        "USER_NAME": account,
        "USER_PASSWORD": "",
        "SQLSERVER": server,
        "INSTALL_SQL_EXPRESS": "0",
        "APPDIR": AMS_FOLDER,
        "CONFIG_PATH": AMS_FOLDER + "config",
        "LOG_PATH": AMS_FOLDER + "logs",
    }


def install_ams(
    node: dict,
    version: str,
    account: str,
    connection_string: str = "",
    now: datetime | None = None,
    state: dict | None = None,
) -> None:
    """An install done by hand: the installer run with the right settings, then the connection
    string saved in the configuration tool."""
    properties = install_properties(account, connection_string)
    run_installer(node, version, properties, now, state=state)
    if connection_string:
        node["registry"][AMS_PARAMETERS_KEY]["ConnectionString"] = connection_string


# ---------------------------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------------------------


def _bare(state: dict) -> None:
    """Nothing prepared yet: feature missing everywhere, no gMSA, no KDS key, empty SQL."""
    for name in state["nodes"]:
        apply_fault(state, f"feature_missing:{name}")
    apply_fault(state, "kds_missing")
    apply_fault(state, "gmsa_missing")
    state["sql"]["databases"].pop("AccessManager", None)
    state["sql"]["logins"] = {}


def _existing_cluster(state: dict) -> None:
    """The nodes already form a cluster running AMS 2.1 as a Generic Service role (adoption)."""
    names = list(state["nodes"])
    hints = state["suggested_inputs"]
    account = hints["gmsa"]
    for name in names:
        node = state["nodes"][name]
        install_ams(
            node,
            hints["ams_version"],
            account,
            hints["sql_connection_string"],
            parse_iso(state["generated_at"]),
        )
        node["services"][AMS_SERVICE]["start_type"] = "Manual"
        node["services"][AMS_SERVICE]["status"] = "Running" if name == names[0] else "Stopped"
        node["services"]["ClusSvc"].update(start_type="Automatic", status="Running")
    domain = state["domain"]
    for extra in (hints["cluster_name"], hints["access_point_name"]):
        domain["computers"][extra] = _computer(extra, domain["fqdn"], f"OU=Servers,{domain['dn']}")
    state["cluster"] = {
        "name": hints["cluster_name"],
        "fqdn": f"{hints['cluster_name'].lower()}.{domain['fqdn']}",
        "address": hints["cluster_address"],
        "nodes": dict.fromkeys(names, "Up"),
        "quorum": {
            "type": "Majority",
            "witness": {"kind": "file_share", "path": hints["share_path"]},
        },
        "groups": {
            hints["access_point_name"]: {
                "owner": names[0],
                "state": "Online",
                "preferred_owners": [],
                "resources": [
                    {
                        "name": hints["access_point_name"],
                        "type": "Network Name",
                        "state": "Online",
                        "parameters": {"DnsName": hints["access_point_name"]},
                    },
                    {
                        "name": f"IP Address {hints['access_point_address']}",
                        "type": "IP Address",
                        "state": "Online",
                        "parameters": {"Address": hints["access_point_address"]},
                    },
                    {
                        "name": AMS_DISPLAY_NAME,
                        "type": "Generic Service",
                        "state": "Online",
                        "parameters": {"ServiceName": AMS_SERVICE, "UseNetworkName": 1},
                    },
                ],
            }
        },
        "validation_reports": [],
    }


BALANCER_NAME = "AMSWEB"
BALANCER_ADDRESS = "10.20.0.60"


def balancer_record(state: dict) -> dict:
    """A simple round-robin load balancer in front of every node: its virtual name resolves to
    BALANCER_ADDRESS; it sends each new connection to the next member it may use (not drained,
    reachable, answering its /health-check probe) and passes TLS through (no offloading)."""
    fqdn = f"{BALANCER_NAME.lower()}.{state['domain']['fqdn']}"
    return {
        "name": BALANCER_NAME,
        "fqdn": fqdn,
        "address": BALANCER_ADDRESS,
        "port": 443,
        "members": list(state["nodes"]),
        "drained": [],
        "cannot_reach": [],
        "next": 0,
        "probe_path": "/health-check",
    }


def _farm(state: dict) -> None:
    """Standalone nodes for a load-balanced farm: no Failover Clustering feature (a farm does not
    need it), a balancer whose name the certificate on every node covers, AMS not yet installed."""
    for name in state["nodes"]:
        apply_fault(state, f"feature_missing:{name}")


SCENARIOS: dict[str, Callable[[dict], None]] = {
    "default": lambda state: None,
    "bare": _bare,
    "existing_cluster": _existing_cluster,
    "express": lambda state: apply_fault(state, "sql_express"),
    "farm": _farm,
}


def load_scenario(name_or_path: str, node_names: list[str], now: datetime | None = None) -> dict:
    """A built-in scenario ("default", "bare+kds_too_new", ...) or a JSON scenario file.

    A name may carry fault specs after `+`. A file holds either a whole state (it has "nodes") or
    {"base": scenario, "faults": [spec...], "patch": {...}} where `patch` is deep-merged into the
    base state before the faults are applied.
    """
    path = Path(name_or_path)
    if path.suffix.lower() == ".json" or path.is_file():
        return _from_file(path, node_names, now)
    base, *specs = name_or_path.split("+")
    state = _builtin(base.strip() or "default", node_names, now)
    for spec in specs:
        apply_fault(state, spec.strip())
    return state


def _builtin(name: str, node_names: list[str], now: datetime | None) -> dict:
    if name not in SCENARIOS:
        raise ValueError(f"Unknown scenario '{name}'; built-in: {', '.join(sorted(SCENARIOS))}.")
    state = default_state(node_names, now)
    SCENARIOS[name](state)
    state["faults"]["applied"] = []
    state["faults"]["undo"] = []
    state["scenario"] = name
    return state


def _from_file(path: Path, node_names: list[str], now: datetime | None) -> dict:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"Scenario file {path} must hold a JSON object.")
    if "nodes" in data:
        state = data
        state.setdefault("faults", empty_faults())
    else:
        state = load_scenario(str(data.get("base", "default")), node_names, now)
        _deep_merge(state, data.get("patch") or {})
        for spec in data.get("faults") or []:
            apply_fault(state, spec)
    state["scenario"] = str(path)
    json.dumps(state)  # refuse anything that is not plain JSON
    return state


def _deep_merge(target: dict, patch: dict) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


# ---------------------------------------------------------------------------------------------
# Faults
# ---------------------------------------------------------------------------------------------

FAULT_HELP = {
    "unreachable:NODE": "WinRM on NODE does not answer (protocol)",
    "auth_failure:NODE": "NODE refuses the credentials with HTTP 401 (protocol)",
    "slow:NODE:SECONDS": "every action on NODE takes SECONDS longer (protocol)",
    "reboot:NODE:SCRIPT": "NODE restarts while SCRIPT runs (protocol)",
    "crash:NODE:SCRIPT": "SCRIPT on NODE stops halfway without a result (protocol)",
    "kds_missing": "the domain has no KDS root key",
    "kds_too_new": "the only KDS root key became effective 1 hour ago (usable in 9 hours)",
    "gmsa_missing": "the service account does not exist",
    "gmsa_delegable": "the service account may be delegated (AccountNotDelegated false)",
    "gmsa_not_allowed:NODE": "NODE's computer account may not retrieve the gMSA password",
    "feature_missing:NODE": "Failover-Clustering is not installed on NODE",
    "sql_express": "the SQL server is SQL Server Express",
    "sql_unreachable:NODE": "NODE cannot reach SQL Server on TCP 1433",
    "sql_no_database": "the AccessManager database does not exist",
    "sql_no_login": "the service account has no SQL login",
    "no_stored_passwords:NODE": "NODE forbids tasks that store a password (0x80070520)",
    "no_batch_logon:NODE": "nobody, not even Administrators, may log on as a batch job on NODE",
    "batch_logon_gmsa:NODE": "the service account may log on as a batch job on NODE",
    "ad_module:NODE": "RSAT-AD-PowerShell is installed on NODE",
    "credssp:NODE": "NODE's WinRM service accepts CredSSP (Enable-WSManCredSSP -Role Server)",
    "version_mismatch:NODE[:VERSION]": "NODE already runs another AMS version",
    "old_dc": "the only domain controller runs Windows Server 2012 (6.2)",
    "test_cluster_warn": "Test-Cluster reports warnings",
    "test_cluster_fail": "Test-Cluster reports failures",
    "role_fails_on:NODE": "the AMS cluster role fails to come online on NODE",
    "pending_reboot:NODE": "NODE has a restart pending",
    "account_mismatch:NODE[:ACCOUNT]": "AMS on NODE runs as another account (after the install)",
    "certificate_mismatch:NODE": "NODE's HTTPS port is bound to another certificate",
    "health_fails:NODE": "AMS on NODE answers its health check with 503 (service unhealthy)",
    "balancer_cannot_reach:NODE": "the load balancer cannot reach NODE (farm scenario)",
}


class _Edit:
    """Records the old value of each path a fault changes, so clear_faults can put it back."""

    def __init__(self, state: dict) -> None:
        self.state = state

    def set(self, path: list, value: Any) -> None:
        parent = self._parent(path)
        undo: dict[str, Any] = {"path": list(path)}
        if path[-1] in parent:
            undo["value"] = copy.deepcopy(parent[path[-1]])
        else:
            undo["absent"] = True
        self.state["faults"]["undo"].append(undo)
        parent[path[-1]] = value

    def _parent(self, path: list) -> dict:
        target = self.state
        for key in path[:-1]:
            target = target[key]
        return target


def _node_arg(state: dict, arg: str) -> str:
    for name in state["nodes"]:
        if name.upper() == arg.upper():
            return name
    raise ValueError(f"No node named '{arg}' in this lab ({', '.join(state['nodes'])}).")


def _protocol_fault(state: dict, kind: str, args: list[str]) -> None:
    faults = state["faults"]
    node = _node_arg(state, args[0])
    if kind in ("unreachable", "auth_failure"):
        if node not in faults[kind]:
            faults[kind].append(node)
    elif kind == "slow":
        faults["slow"][node] = float(args[1]) if len(args) > 1 else 5.0
    else:
        if len(args) < 2 or not args[1]:
            raise ValueError(f"'{kind}' needs a script name: {kind}:NODE:SCRIPT.")
        key = "reboot_mid_action" if kind == "reboot" else "crash_halfway"
        faults[key][node] = args[1]


def _gmsa_sam(state: dict) -> str:
    return state["suggested_inputs"]["gmsa"].split("\\", 1)[1]


def _fault_kds_missing(state: dict, edit: _Edit, args: list[str]) -> None:
    edit.set(["domain", "kds_root_keys"], [])


def _fault_kds_too_new(state: dict, edit: _Edit, args: list[str]) -> None:
    effective = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    edit.set(["domain", "kds_root_keys"], [_kds_key("too-new", effective)])


def _fault_gmsa_missing(state: dict, edit: _Edit, args: list[str]) -> None:
    sam = _gmsa_sam(state)
    if sam in state["domain"]["gmsas"]:
        edit.set(
            ["domain", "gmsas"], {k: v for k, v in state["domain"]["gmsas"].items() if k != sam}
        )


def _fault_gmsa_delegable(state: dict, edit: _Edit, args: list[str]) -> None:
    edit.set(["domain", "gmsas", _gmsa_sam(state), "account_not_delegated"], False)


def _fault_gmsa_not_allowed(state: dict, edit: _Edit, args: list[str]) -> None:
    node = _node_arg(state, args[0])
    gmsa = state["domain"]["gmsas"][_gmsa_sam(state)]
    kept = [p for p in gmsa["principals_allowed"] if p.upper() != f"{node}$".upper()]
    edit.set(["domain", "gmsas", _gmsa_sam(state), "principals_allowed"], kept)


def _fault_feature_missing(state: dict, edit: _Edit, args: list[str]) -> None:
    node = _node_arg(state, args[0])
    edit.set(["nodes", node, "features", FEATURE], False)
    services = {k: v for k, v in state["nodes"][node]["services"].items() if k != "ClusSvc"}
    edit.set(["nodes", node, "services"], services)


def _fault_sql_express(state: dict, edit: _Edit, args: list[str]) -> None:
    edit.set(["sql", "edition"], "Express Edition (64-bit)")
    edit.set(["sql", "engine_edition"], 4)


def _fault_sql_unreachable(state: dict, edit: _Edit, args: list[str]) -> None:
    edit.set(["sql", "reachable_from", _node_arg(state, args[0])], False)


def _fault_sql_no_database(state: dict, edit: _Edit, args: list[str]) -> None:
    dbs = {k: v for k, v in state["sql"]["databases"].items() if k != "AccessManager"}
    edit.set(["sql", "databases"], dbs)


def _fault_sql_no_login(state: dict, edit: _Edit, args: list[str]) -> None:
    login = state["suggested_inputs"]["gmsa"]
    edit.set(["sql", "logins"], {k: v for k, v in state["sql"]["logins"].items() if k != login})


def _fault_no_stored_passwords(state: dict, edit: _Edit, args: list[str]) -> None:
    node = _node_arg(state, args[0])
    edit.set(["nodes", node, "policy", "stored_passwords_allowed"], False)


def _fault_no_batch_logon(state: dict, edit: _Edit, args: list[str]) -> None:
    node = _node_arg(state, args[0])
    edit.set(["nodes", node, "policy", "batch_logon"], [])


def _fault_batch_logon_gmsa(state: dict, edit: _Edit, args: list[str]) -> None:
    node = _node_arg(state, args[0])
    holders = list(state["nodes"][node].get("policy", {}).get("batch_logon", DEFAULT_BATCH_LOGON))
    edit.set(
        ["nodes", node, "policy", "batch_logon"], [*holders, state["suggested_inputs"]["gmsa"]]
    )


def _fault_ad_module(state: dict, edit: _Edit, args: list[str]) -> None:
    edit.set(["nodes", _node_arg(state, args[0]), "features", "RSAT-AD-PowerShell"], True)


def _fault_credssp(state: dict, edit: _Edit, args: list[str]) -> None:
    """Not a fault: the operator ran Enable-WSManCredSSP -Role Server on the node."""
    edit.set(["nodes", _node_arg(state, args[0]), "winrm", "credssp"], True)


def _fault_version_mismatch(state: dict, edit: _Edit, args: list[str]) -> None:
    node = _node_arg(state, args[0])
    chosen = state["suggested_inputs"]["ams_version"]
    version = (
        args[1] if len(args) > 1 and args[1] else next(v for v in KNOWN_VERSIONS if v != chosen)
    )
    changed = copy.deepcopy(state["nodes"][node])
    install_ams(
        changed,
        version,
        state["suggested_inputs"]["gmsa"],
        state["suggested_inputs"]["sql_connection_string"],
    )
    for part in ("services", "registry", "products", "event_log"):
        edit.set(["nodes", node, part], changed[part])


def _fault_old_dc(state: dict, edit: _Edit, args: list[str]) -> None:
    dcs = copy.deepcopy(state["domain"]["domain_controllers"])
    for dc in dcs:
        dc.update(os="Windows Server 2012 Datacenter", version="6.2 (9200)")
    edit.set(["domain", "domain_controllers"], dcs)


def _fault_pending_reboot(state: dict, edit: _Edit, args: list[str]) -> None:
    node = _node_arg(state, args[0])
    edit.set(["nodes", node, "pending_reboot"], True)
    edit.set(["nodes", node, "registry", CBS_REBOOT_KEY], {})


def _fault_test_cluster(level: str) -> Callable[[dict, _Edit, list[str]], None]:
    def apply(state: dict, edit: _Edit, args: list[str]) -> None:
        state["faults"]["test_cluster"] = level

    return apply


def _fault_role_fails_on(state: dict, edit: _Edit, args: list[str]) -> None:
    node = _node_arg(state, args[0])
    if node not in state["faults"]["role_fails_on"]:
        state["faults"]["role_fails_on"].append(node)


def _installed_node(state: dict, arg: str) -> str:
    node = _node_arg(state, arg)
    if AMS_SERVICE not in state["nodes"][node]["services"]:
        raise ValueError(f"Access Manager is not installed on {node} yet; inject this after it is.")
    return node


def _fault_account_mismatch(state: dict, edit: _Edit, args: list[str]) -> None:
    """The operator gave this node's installer another account than the farm's."""
    node = _installed_node(state, args[0])
    account = args[1] if len(args) > 1 and args[1] else f"{state['domain']['netbios']}\\svc-other$"
    edit.set(["nodes", node, "services", AMS_SERVICE, "account"], account)
    edit.set(["nodes", node, "registry", AMS_SERVICE_KEY, "ObjectName"], account)


def _fault_certificate_mismatch(state: dict, edit: _Edit, args: list[str]) -> None:
    """The node's HTTPS port is bound to a certificate of its own (same names, other key)."""
    node = _node_arg(state, args[0])
    record = state["nodes"][node]
    other = copy.deepcopy(record["certificates"][0])
    other["thumbprint"] = _thumbprint(f"lab-certificate:other:{node}")
    edit.set(["nodes", node, "certificates"], [*record["certificates"], other])
    port = f"0.0.0.0:{(state.get('balancer') or {}).get('port', 443)}"
    bindings = copy.deepcopy(record.get("http_bindings") or {})
    bindings[port] = {"thumbprint": other["thumbprint"], "appid": AMS_APPID}
    edit.set(["nodes", node, "http_bindings"], bindings)


def _fault_health_fails(state: dict, edit: _Edit, args: list[str]) -> None:
    edit.set(["nodes", _node_arg(state, args[0]), "ams_health"], "unhealthy")


def _fault_balancer_cannot_reach(state: dict, edit: _Edit, args: list[str]) -> None:
    node = _node_arg(state, args[0])
    if not state.get("balancer"):
        raise ValueError("This lab has no load balancer; use the 'farm' scenario.")
    edit.set(["balancer", "cannot_reach"], [*state["balancer"]["cannot_reach"], node])


_DOMAIN_FAULTS: dict[str, tuple[int, Callable[[dict, _Edit, list[str]], None]]] = {
    "kds_missing": (0, _fault_kds_missing),
    "kds_too_new": (0, _fault_kds_too_new),
    "gmsa_missing": (0, _fault_gmsa_missing),
    "gmsa_delegable": (0, _fault_gmsa_delegable),
    "gmsa_not_allowed": (1, _fault_gmsa_not_allowed),
    "feature_missing": (1, _fault_feature_missing),
    "sql_express": (0, _fault_sql_express),
    "sql_unreachable": (1, _fault_sql_unreachable),
    "sql_no_database": (0, _fault_sql_no_database),
    "sql_no_login": (0, _fault_sql_no_login),
    "no_stored_passwords": (1, _fault_no_stored_passwords),
    "no_batch_logon": (1, _fault_no_batch_logon),
    "batch_logon_gmsa": (1, _fault_batch_logon_gmsa),
    "ad_module": (1, _fault_ad_module),
    "credssp": (1, _fault_credssp),
    "version_mismatch": (1, _fault_version_mismatch),
    "old_dc": (0, _fault_old_dc),
    "pending_reboot": (1, _fault_pending_reboot),
    "test_cluster_warn": (0, _fault_test_cluster("warn")),
    "test_cluster_fail": (0, _fault_test_cluster("fail")),
    "role_fails_on": (1, _fault_role_fails_on),
    "account_mismatch": (1, _fault_account_mismatch),
    "certificate_mismatch": (1, _fault_certificate_mismatch),
    "health_fails": (1, _fault_health_fails),
    "balancer_cannot_reach": (1, _fault_balancer_cannot_reach),
}
_PROTOCOL_SPECS = {"unreachable", "auth_failure", "slow", "reboot", "crash"}


def fault_kinds() -> list[str]:
    """Every spec keyword apply_fault understands."""
    return sorted(_PROTOCOL_SPECS | set(_DOMAIN_FAULTS))


def apply_fault(state: dict, spec: str) -> None:
    """Inject one fault given as `kind[:arg[:arg]]`, e.g. `unreachable:AMS2` or `kds_too_new`."""
    kind, *args = [part.strip() for part in spec.strip().split(":")]
    state.setdefault("faults", empty_faults())
    for key, value in empty_faults().items():
        state["faults"].setdefault(key, value)
    if kind in _PROTOCOL_SPECS:
        if not args or not args[0]:
            raise ValueError(f"Fault '{kind}' needs a node: {kind}:NODE.")
        _protocol_fault(state, kind, args)
    elif kind in _DOMAIN_FAULTS:
        needed, apply = _DOMAIN_FAULTS[kind]
        if len([a for a in args if a]) < needed:
            raise ValueError(f"Fault '{kind}' needs a node: {kind}:NODE.")
        apply(state, _Edit(state), args)
    else:
        raise ValueError(f"Unknown fault '{kind}'; known: {', '.join(fault_kinds())}.")
    state["faults"]["applied"].append(spec.strip())


def clear_faults(state: dict) -> None:
    """Remove every injected fault and put back what domain-level faults replaced."""
    faults = state.get("faults") or empty_faults()
    for undo in reversed(faults.get("undo", [])):
        target = state
        try:
            for key in undo["path"][:-1]:
                target = target[key]
        except (KeyError, TypeError):
            continue
        if undo.get("absent"):
            target.pop(undo["path"][-1], None)
        else:
            target[undo["path"][-1]] = undo["value"]
    state["faults"] = empty_faults()


# ---------------------------------------------------------------------------------------------
# Queries shared by handlers
# ---------------------------------------------------------------------------------------------


def find_node(state: dict, name: str) -> dict:
    """The node record for `name` (case-insensitive); KeyError when the lab has no such node."""
    for key, node in state.get("nodes", {}).items():
        if key.upper() == (name or "").upper():
            return node
    raise KeyError(name)


def find_gmsa(state: dict, account: str) -> dict | None:
    """The gMSA named DOMAIN\\name$, name$ or name (case-insensitive), if it exists."""
    sam = account.split("\\", 1)[-1].split("@", 1)[0]
    if not sam.endswith("$"):
        sam += "$"
    for key, gmsa in state["domain"]["gmsas"].items():
        if key.upper() == sam.upper():
            return gmsa
    return None


def usable_kds_key(state: dict, now: datetime | None = None) -> bool:
    """A KDS root key domain controllers use: effective at least 10 hours ago (rule
    kds_effective_delay)."""
    now = now or datetime.now(UTC)
    return any(
        parse_iso(key["effective_time"]) + KDS_DELAY <= now
        for key in state["domain"].get("kds_root_keys", [])
    )


def expand_principals(state: dict, principals: list[str]) -> set[str]:
    """Upper-case sam names allowed, with group members expanded (one level is enough here)."""
    allowed: set[str] = set()
    groups = {k.upper(): v for k, v in state["domain"].get("groups", {}).items()}
    for principal in principals:
        bare = principal.split("\\", 1)[-1].upper()
        allowed.add(bare)
        for member in groups.get(bare, {}).get("members", []):
            allowed.add(member.upper())
    return allowed


def kds_usable_at(key: dict) -> datetime:
    """Domain controllers hand out gMSA passwords only 10 hours after a key's EffectiveTime."""
    return parse_iso(key["effective_time"]) + KDS_DELAY


def node_networks(state: dict) -> dict:
    """Each node's subnet (ipaddress network) by node name, from ip_address and prefix_length."""
    found = {}
    for name, node in (state.get("nodes") or {}).items():
        if not node.get("ip_address"):
            continue
        prefix = node.get("prefix_length", LAB_PREFIX_LENGTH)
        found[name] = ipaddress.ip_interface(f"{node['ip_address']}/{prefix}").network
    return found


def static_address_refusal(state: dict, address: str) -> str | None:
    """Why Windows would not bring `address` online as a cluster IP Address resource, or None:
    not an IP address, not a unicast host address (APIPA, loopback, multicast, link-local, the
    broadcast address), the network or broadcast address of a node subnet, or on no network
    the nodes are connected to (Failover Clustering places an address on a cluster network)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"The static address '{address}' is not a valid IP address."
    if (
        ip.is_unspecified
        or ip.is_loopback
        or ip.is_multicast
        or ip.is_link_local
        or (ip.version == 4 and ip.is_reserved)
    ):
        return f"The static address '{address}' is not a valid unicast address for a cluster."
    networks = [n for n in node_networks(state).values() if n.version == ip.version]
    for network in networks:
        edges = {network.network_address} | (
            {network.broadcast_address} if ip.version == 4 else set()
        )
        if ip in edges and network.num_addresses > 2:
            return (
                f"The static address '{address}' is the network or broadcast address of "
                f"{network} and cannot be assigned."
            )
    if not any(ip in network for network in networks):
        return f"Static address '{address}' was not found on any cluster network."
    return None


def gmsa_retrievable(state: dict, node: dict, account: str) -> bool:
    """The node may retrieve the gMSA's password: the account exists and is enabled, the node is
    among its allowed principals, and a KDS root key is usable (10 hours after it became
    effective). Before that, a service or task running as the gMSA cannot log on."""
    gmsa = find_gmsa(state, account)
    if gmsa is None or not gmsa.get("enabled", True):
        return False
    allowed = expand_principals(state, gmsa["principals_allowed"])
    return f"{node['name']}$".upper() in allowed and usable_kds_key(state)


def service_can_log_on(state: dict, node: dict, account: str) -> bool:
    """A service account a node can start a service as: a gMSA only when retrievable (rule
    kds_effective_delay); built-in and ordinary accounts always (the lab keeps no passwords)."""
    if not account.rstrip().endswith("$"):
        return True
    return gmsa_retrievable(state, node, account)
