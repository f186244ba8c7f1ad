"""Lab models of the prerequisite scripts: answers computed from the simulated world.

Read-only scripts only read `ctx.store`; the offered fixes change it in one transaction. Error texts
mimic what the real cmdlets say, so the step's messages can be checked against them. Active
Directory needs the ActiveDirectory module on the node (rule ad_module) and, like SQL Server, the
caller's identity on another machine (rule second_hop).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.lab import scenarios
from app.lab.context import SECOND_HOP_ERRORS, ScriptFailure
from app.lab.handlers import handler

AD_UNREACHABLE = SECOND_HOP_ERRORS["ad"]
ANONYMOUS_LOGIN = SECOND_HOP_ERRORS["sql"]
AD_FEATURE = "RSAT-AD-PowerShell"
AD_MODULE_MISSING = (
    "The specified module 'ActiveDirectory' was not loaded because no valid module file was "
    "found in any module directory."
)
INSTALLABLE = (scenarios.FEATURE, AD_FEATURE)
SQL_NETWORK = (
    "A network-related or instance-specific error occurred while establishing a connection to "
    "SQL Server. The server was not found or was not accessible."
)


def param(ctx, name: str, default=None):
    """A script parameter by name, ignoring case as PowerShell does."""
    for key, value in (ctx.params or {}).items():
        if key.lower() == name.lower():
            return value
    return default


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _node(state: dict, ctx) -> dict:
    try:
        return scenarios.find_node(state, ctx.node)
    except KeyError:
        raise ScriptFailure(f"The lab has no node named {ctx.node}.") from None


@handler("connection_probe")
def connection_probe(ctx) -> dict:
    """Who and where the session is: the node's identity and the signed-in user."""
    state = ctx.store.read()
    node = _node(state, ctx)
    return {
        "computer_name": node["name"],
        "dns_host_name": node["fqdn"].split(".", 1)[0],
        "domain": node["domain"],
        "part_of_domain": True,
        "user": ctx.username,
        "is_admin": True,
        "ps_version": "5.1.17763.1",
        "os_caption": node["os"]["caption"],
        "os_version": node["os"]["version"],
        "boot_time": node.get("boot_time"),
        "addresses": node_addresses(node),
    }


def node_addresses(node: dict) -> list[dict]:
    """Get-NetIPAddress as the probe filters it: the node's own (not WellKnown) addresses."""
    if not node.get("ip_address"):
        return []
    prefix = int(node.get("prefix_length", scenarios.LAB_PREFIX_LENGTH))
    return [{"address": node["ip_address"], "prefix_length": prefix, "interface": "Ethernet"}]


# ---------------------------------------------------------------------------------------------
# prereq_node_facts
# ---------------------------------------------------------------------------------------------


def pending_reboot(node: dict) -> dict:
    """Reasons a restart is pending, as the registry shows them."""
    registry = node.get("registry", {})
    reasons = []
    if scenarios.CBS_REBOOT_KEY in registry:
        reasons.append("Component Based Servicing")
    if scenarios.WU_REBOOT_KEY in registry:
        reasons.append("Windows Update")
    session = registry.get("HKLM\\SYSTEM\\CurrentControlSet\\Control\\Session Manager", {})
    if session.get("PendingFileRenameOperations"):
        reasons.append("Pending file rename operations")
    if node.get("pending_reboot") and not reasons:
        reasons.append("Component Based Servicing")
    return {"pending": bool(reasons), "reasons": reasons}


def installed_ams(node: dict) -> dict:
    """Access Manager as the registry, the Uninstall entry and the service show it."""
    registry = node.get("registry", {}).get(scenarios.AMS_KEY) or {}
    product = next(
        (p for p in node.get("products", []) if p["name"] == scenarios.AMS_PRODUCT), None
    )
    service = node.get("services", {}).get(scenarios.AMS_SERVICE)
    info = None
    if service:
        info = {
            "status": service["status"],
            "start_mode": "Auto" if service["start_type"] == "Automatic" else service["start_type"],
            "account": service["account"],
            "image_path": service["image_path"],
        }
    return {
        "installed": bool(registry or product or service),
        "registry_version": registry.get("Version"),
        "display_version": product["version"] if product else None,
        "service": info,
    }


def _sql_target(sql: dict, host: str, data_source: str) -> bool:
    names = {sql["server"].lower(), sql["fqdn"].lower()}
    source = data_source.lower().removeprefix("tcp:").split(",", 1)[0]
    instance = source.split("\\", 1)[1] if "\\" in source else "mssqlserver"
    return host.lower() in names and instance == sql["instance"].lower()


def sql_port_open(state: dict, node: dict, host: str, port: int) -> bool:
    """Test-NetConnection to the SQL port from the node (no identity involved)."""
    sql = state["sql"]
    known_host = host.lower() in {sql["server"].lower(), sql["fqdn"].lower()}
    return bool(
        known_host and port == sql["port"] and sql["reachable_from"].get(node["name"], False)
    )


def _sql_source_host(source: str) -> str:
    return source.lower().removeprefix("tcp:").split(",", 1)[0].split("\\", 1)[0]


def sql_facts(ctx, state: dict, node: dict, params: dict) -> dict:
    """SqlConnection.Open() with integrated security as whoever runs the script, then queries."""
    sql = state["sql"]
    facts = {
        "identity": ctx.username,
        "query_ok": False,
        "error": None,
        "login": None,
        "edition": None,
        "engine_edition": None,
        "version": None,
        "can_view_logins": None,
        "database_exists": None,
        "login_exists": None,
        "default_database": None,
        "database_user": None,
        "database_roles": [],
    }
    host = _sql_source_host(params["server"])
    hop = ctx.hop_error("sql")
    if not sql_port_open(state, node, host, sql["port"]) or not _sql_target(
        sql, host, params["server"]
    ):
        facts["error"] = SQL_NETWORK
        return facts
    if (error := hop) is not None:
        facts["error"] = error
        return facts
    logins = {name.lower(): value for name, value in sql["logins"].items()}
    caller = ctx.username
    operator = not scenarios.find_gmsa(state, caller)
    if not operator and caller.lower() not in logins:
        facts["error"] = f"Login failed for user '{caller}'."
        return facts
    databases = {name.lower(): name for name in sql["databases"]}
    login = logins.get(params["account"].lower())
    database = databases.get(params["database"].lower())
    roles = (login or {}).get("roles", {}).get(database or "", None)
    if not operator and database and roles is None:
        facts["error"] = (
            f'The server principal "{caller}" is not able to access the database "{database}" '
            "under the current security context."
        )
        return facts
    facts.update(
        query_ok=True,
        login=caller,
        edition=sql["edition"],
        engine_edition=sql["engine_edition"],
        version=sql["version"],
        can_view_logins=operator,
        database_exists=database is not None,
        login_exists=login is not None,
        default_database=(login or {}).get("default_db"),
        database_user=params["account"] if roles is not None and database else None,
        database_roles=list(roles or []) if database else [],
    )
    return facts


@handler("prereq_node_facts")
def prereq_node_facts(ctx) -> dict:
    """The node's OS, domain, features, pending restart, AMS install and the SQL port: all local."""
    state = ctx.store.read()
    node = _node(state, ctx)
    ctx.progress("Prerequisites", "Operating system and features", 10)
    reboot = pending_reboot(node)
    ctx.progress("Prerequisites", "Access Manager", 40)
    host = str(param(ctx, "SqlHost", ""))
    port = int(param(ctx, "SqlPort", 1433))
    ctx.progress("Prerequisites", "SQL Server port", 70)
    sql = {"host": host, "port": port, "tcp": sql_port_open(state, node, host, port)}
    ctx.progress("Prerequisites", "Done", 100)
    features = node["features"]
    return {
        "computer_name": node["name"],
        "domain": node["domain"],
        "part_of_domain": True,
        "os": {
            "caption": node["os"]["caption"],
            "version": node["os"]["version"],
            "build": node["os"]["build"],
            "product_type": 3,
        },
        "feature": {
            "name": scenarios.FEATURE,
            "install_state": "Installed" if features.get(scenarios.FEATURE) else "Available",
        },
        "ad_module": {
            "name": AD_FEATURE,
            "install_state": "Installed" if features.get(AD_FEATURE) else "Available",
        },
        "pending_reboot": reboot,
        "ams": installed_ams(node),
        "sql": sql,
    }


@handler("prereq_sql_facts", reaches=("sql",))
def prereq_sql_facts(ctx) -> dict:
    """SQL Server as the caller sees it: run as the gMSA in a task, or as the operator."""
    state = ctx.store.read()
    node = _node(state, ctx)
    params = {
        "server": str(param(ctx, "SqlServer", "")),
        "database": str(param(ctx, "Database", "AccessManager")),
        "account": str(param(ctx, "Account", "")),
    }
    return sql_facts(ctx, state, node, params)


# ---------------------------------------------------------------------------------------------
# prereq_domain_facts
# ---------------------------------------------------------------------------------------------


def require_ad_module(ctx, state: dict) -> None:
    """Rule ad_module: Import-Module ActiveDirectory fails on a node without RSAT-AD-PowerShell."""
    if not _node(state, ctx)["features"].get(AD_FEATURE):
        raise ScriptFailure(AD_MODULE_MISSING)


def gmsa_facts(state: dict, account: str) -> dict:
    """Get-ADServiceAccount with the properties the checks need; principals as sam names."""
    domain = state["domain"]
    gmsa = scenarios.find_gmsa(state, account)
    if gmsa is None:
        return {"found": False, "sam": account.split("\\", 1)[-1]}
    groups = {name.upper(): group for name, group in domain.get("groups", {}).items()}
    principals = []
    for name in gmsa["principals_allowed"]:
        group = groups.get(name.split("\\", 1)[-1].upper())
        principals.append(
            {
                "sam": name,
                "class": "group" if group else "computer",
                "members": list(group["members"]) if group else [],
            }
        )
    admins = {m.upper() for m in groups.get("DOMAIN ADMINS", {}).get("members", [])}
    return {
        "found": True,
        "sam": gmsa["sam"],
        "enabled": gmsa["enabled"],
        "account_not_delegated": gmsa["account_not_delegated"],
        "dns_host_name": gmsa["dns_host_name"],
        "principals": principals,
        "spns": list(gmsa["spns"]),
        "member_of": list(gmsa["member_of"]),
        "domain_admin": gmsa["sam"].upper() in admins or "Domain Admins" in gmsa["member_of"],
    }


@handler("prereq_domain_facts", reaches=("ad",))
def prereq_domain_facts(ctx) -> dict:
    """Domain controllers, KDS root keys and the service account, as the AD module reports them."""
    state = ctx.store.read()
    domain = state["domain"]
    wanted = str(param(ctx, "Domain", "")).lower()
    result = {
        "now_utc": scenarios.iso(_now()),
        "domain": None,
        "domain_controllers": [],
        "kds_root_keys": [],
        "gmsa": None,
        "errors": {},
    }
    try:
        require_ad_module(ctx, state)
    except ScriptFailure as exc:
        ctx.consulted.add("ad")  # the script stops before it reaches the domain
        result["errors"] = {"module": str(exc)}
        return result
    if (error := ctx.hop_error("ad")) is not None:
        result["errors"] = dict.fromkeys(("domain", "kds", "gmsa"), error)
        return result
    if wanted not in (domain["fqdn"].lower(), domain["netbios"].lower()):
        message = f"The server has rejected the client credentials or '{wanted}' is not a domain."
        result["errors"] = {"domain": AD_UNREACHABLE, "kds": message, "gmsa": AD_UNREACHABLE}
        return result
    ctx.progress("Domain prerequisites", "Domain controllers", 10)
    result["domain"] = {
        "dns_root": domain["fqdn"],
        "netbios": domain["netbios"],
        "dn": domain["dn"],
    }
    result["domain_controllers"] = [
        {
            "name": dc["name"],
            "hostname": dc["fqdn"],
            "os": dc["os"],
            "os_version": dc["version"],
            "site": dc["site"],
        }
        for dc in domain["domain_controllers"]
    ]
    ctx.progress("Domain prerequisites", "KDS root keys", 40)
    result["kds_root_keys"] = [dict(key) for key in domain["kds_root_keys"]]
    ctx.progress("Domain prerequisites", "Service account", 70)
    result["gmsa"] = gmsa_facts(state, str(param(ctx, "ServiceAccount", "")))
    return result


# ---------------------------------------------------------------------------------------------
# Offered fixes
# ---------------------------------------------------------------------------------------------


@handler("prereq_install_feature")
def prereq_install_feature(ctx) -> dict:
    """Install-WindowsFeature <Failover-Clustering|RSAT-AD-PowerShell> -IncludeManagementTools."""
    feature = str(param(ctx, "FeatureName", scenarios.FEATURE))
    if feature not in INSTALLABLE:
        raise ScriptFailure(
            f"Cannot validate argument on parameter 'FeatureName'. The argument \"{feature}\" does "
            'not belong to the set "Failover-Clustering,RSAT-AD-PowerShell".'
        )
    was_installed = ctx.store.read()["nodes"].get(ctx.node, {}).get("features", {}).get(feature)
    if not was_installed:
        ctx.information(f"Installing {feature} with its management tools.")
        for percent in (10, 40, 70, 100):
            ctx.progress("Install-WindowsFeature", f"Installing {feature}", percent)
            ctx.sleep(0.2)
        with ctx.store.transaction() as state:
            node = _node(state, ctx)
            node["features"][feature] = True
            if feature == scenarios.FEATURE:
                node["features"]["RSAT-Clustering-PowerShell"] = True
                node["services"].setdefault("ClusSvc", scenarios.cluster_service())
    return {
        "feature": feature,
        "was_installed": bool(was_installed),
        "install_state": "Installed",
        "success": True,
        "restart_needed": "No",
    }


@handler("prereq_set_gmsa_principals", reaches=("ad",))
def prereq_set_gmsa_principals(ctx) -> dict:
    """Read the list fresh, add the computers, send the whole list (rule gmsa_principals_replace:
    Set-ADServiceAccount replaces whatever it is given)."""
    account = str(param(ctx, "ServiceAccount", ""))
    add = param(ctx, "Add", [])
    add = [add] if isinstance(add, str) else list(add or [])
    with ctx.store.transaction() as state:
        require_ad_module(ctx, state)
        ctx.reach("ad")
        gmsa = scenarios.find_gmsa(state, account)
        if gmsa is None:
            raise ScriptFailure(f"Cannot find an object with identity: '{account}'.")
        computers = {c["sam"].upper(): c["sam"] for c in state["domain"]["computers"].values()}
        before = list(gmsa["principals_allowed"])
        wanted = list(before)
        added = []
        for name in add:
            sam = str(name).split("\\", 1)[-1]
            sam = sam if sam.endswith("$") else sam + "$"
            if sam.upper() not in computers:
                raise ScriptFailure(
                    f"Get-ADComputer : Cannot find an object with identity: '{name}' under: "
                    f"'{state['domain']['dn']}'."
                )
            if sam.upper() not in {p.upper() for p in wanted}:
                wanted.append(computers[sam.upper()])
                added.append(computers[sam.upper()])
        if added:
            set_principals(gmsa, wanted)
    if added:
        ctx.information(f"Adding {', '.join(added)}; keeping {', '.join(before)}.")
    return {
        "account": gmsa["sam"],
        "principals_before": before,
        "added": added,
        "principals": list(gmsa["principals_allowed"]),
    }


def set_principals(gmsa: dict, principals: list[str]) -> None:
    """Set-ADServiceAccount -PrincipalsAllowedToRetrieveManagedPassword: REPLACES the list."""
    gmsa["principals_allowed"] = list(principals)


@handler("prereq_restart_node")
def prereq_restart_node(ctx) -> dict:
    """shutdown /r /t N: clears the pending restart and moves the boot time forward.

    The restart begins after the delay (`restart_at`): from then on every shell opened before it
    is gone (rule restart_ends_shells), and the node refuses connections until the restart is over
    (`down_until`).
    """
    delay = int(param(ctx, "DelaySeconds", 10))
    if not 5 <= delay <= 600:
        raise ScriptFailure(f"Cannot validate argument on parameter 'DelaySeconds': {delay}.")
    now = _now()
    with ctx.store.transaction() as state:
        node = _node(state, ctx)
        before = node.get("boot_time")
        node["pending_reboot"] = False
        for key in (scenarios.CBS_REBOOT_KEY, scenarios.WU_REBOOT_KEY):
            node["registry"].pop(key, None)
        node["registry"].get("HKLM\\SYSTEM\\CurrentControlSet\\Control\\Session Manager", {}).pop(
            "PendingFileRenameOperations", None
        )
        node["boot_time"] = scenarios.iso(now + timedelta(seconds=delay + 5))
        node["down_until"] = scenarios.iso(now + timedelta(seconds=delay + 5))
        node["restart_at"] = scenarios.iso(now + timedelta(seconds=delay))
    ctx.information(f"{ctx.node} will restart in {delay} seconds.")
    return {
        "computer_name": node["name"],
        "boot_time": before,
        "restart_in": delay,
        "restart_queued": True,
    }
