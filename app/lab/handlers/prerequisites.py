"""Lab models of the prerequisite scripts: answers computed from the simulated world.

Read-only scripts only read `ctx.store`; the three offered fixes change it in one transaction.
Error texts mimic what the real cmdlets say, so the step's messages can be checked against them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.lab import scenarios
from app.lab.context import ScriptFailure
from app.lab.handlers import handler

AD_UNREACHABLE = (
    "Unable to contact the server. This may be because this server does not exist, it is "
    "currently down, or it does not have the Active Directory Web Services running."
)
ANONYMOUS_LOGIN = "Login failed for user 'NT AUTHORITY\\ANONYMOUS LOGON'."
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
    }


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


def test_service_account(state: dict, node: dict, account: str, auth: str) -> dict:
    """Test-ADServiceAccount: true only if the gMSA exists and this node may use it."""
    result = {"account": account, "result": None, "error": None}
    if not node.get("features", {}).get("RSAT-AD-PowerShell", True):
        result["error"] = "The specified module 'ActiveDirectory' was not loaded."
        return result
    if not scenarios.second_hop_ok(state, auth):
        result["error"] = AD_UNREACHABLE
        return result
    gmsa = scenarios.find_gmsa(state, account)
    if gmsa is None:
        sam = account.split("\\", 1)[-1]
        result["error"] = (
            f"Cannot find an object with identity: '{sam}' under: '{state['domain']['dn']}'."
        )
        return result
    allowed = scenarios.expand_principals(state, gmsa["principals_allowed"])
    same_domain = node["domain"].lower() == state["domain"]["fqdn"].lower()
    result["result"] = bool(
        gmsa["enabled"] and same_domain and f"{node['name']}$".upper() in allowed
    )
    return result


def _sql_target(sql: dict, host: str, data_source: str) -> bool:
    names = {sql["server"].lower(), sql["fqdn"].lower()}
    source = data_source.lower().removeprefix("tcp:").split(",", 1)[0]
    instance = source.split("\\", 1)[1] if "\\" in source else "mssqlserver"
    return host.lower() in names and instance == sql["instance"].lower()


def sql_facts(state: dict, node: dict, params: dict, auth: str) -> dict:
    """What the node learns about SQL Server: TCP reachability, then a query if it can sign in."""
    sql = state["sql"]
    facts = {
        "host": params["host"],
        "port": params["port"],
        "tcp": False,
        "query_ok": False,
        "error": None,
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
    known_host = params["host"].lower() in {sql["server"].lower(), sql["fqdn"].lower()}
    facts["tcp"] = bool(
        known_host
        and params["port"] == sql["port"]
        and sql["reachable_from"].get(node["name"], False)
    )
    if not facts["tcp"]:
        return facts
    if not _sql_target(sql, params["host"], params["server"]):
        facts["error"] = SQL_NETWORK
        return facts
    if not scenarios.second_hop_ok(state, auth):
        facts["error"] = ANONYMOUS_LOGIN
        return facts
    databases = {name.lower(): name for name in sql["databases"]}
    logins = {name.lower(): value for name, value in sql["logins"].items()}
    login = logins.get(params["account"].lower())
    database = databases.get(params["database"].lower())
    roles = (login or {}).get("roles", {}).get(database or "", None)
    facts.update(
        query_ok=True,
        edition=sql["edition"],
        engine_edition=sql["engine_edition"],
        version=sql["version"],
        can_view_logins=True,
        database_exists=database is not None,
        login_exists=login is not None,
        default_database=(login or {}).get("default_db"),
        database_user=params["account"] if roles is not None and database else None,
        database_roles=list(roles or []) if database else [],
    )
    return facts


@handler("prereq_node_facts")
def prereq_node_facts(ctx) -> dict:
    """The node's OS, domain, feature, pending restart, AMS install, gMSA test and SQL view."""
    state = ctx.store.read()
    node = _node(state, ctx)
    account = str(param(ctx, "ServiceAccount", ""))
    ctx.progress("Prerequisites", "Operating system and features", 10)
    reboot = pending_reboot(node)
    ctx.progress("Prerequisites", "Access Manager and the service account", 40)
    gmsa = test_service_account(state, node, account, ctx.auth)
    ctx.progress("Prerequisites", "SQL Server", 70)
    sql_params = {
        "server": str(param(ctx, "SqlServer", "")),
        "host": str(param(ctx, "SqlHost", "")),
        "port": int(param(ctx, "SqlPort", 1433)),
        "database": str(param(ctx, "Database", "AccessManager")),
        "account": account,
    }
    sql = sql_facts(state, node, sql_params, ctx.auth)
    ctx.progress("Prerequisites", "Done", 100)
    installed = node["features"].get(scenarios.FEATURE, False)
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
            "install_state": "Installed" if installed else "Available",
        },
        "pending_reboot": reboot,
        "ams": installed_ams(node),
        "gmsa_test": gmsa,
        "sql": sql,
    }


# ---------------------------------------------------------------------------------------------
# prereq_domain_facts
# ---------------------------------------------------------------------------------------------


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


@handler("prereq_domain_facts")
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
    if not scenarios.second_hop_ok(state, ctx.auth):
        result["errors"] = dict.fromkeys(("domain", "kds", "gmsa"), AD_UNREACHABLE)
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
    """Install-WindowsFeature Failover-Clustering -IncludeManagementTools."""
    feature = str(param(ctx, "FeatureName", scenarios.FEATURE))
    if feature != scenarios.FEATURE:
        raise ScriptFailure("Only the Failover-Clustering feature is installed by this script.")
    was_installed = ctx.store.read()["nodes"].get(ctx.node, {}).get("features", {}).get(feature)
    if not was_installed:
        ctx.information("Installing Failover-Clustering with its management tools.")
        for percent in (10, 40, 70, 100):
            ctx.progress("Install-WindowsFeature", f"Installing {feature}", percent)
            ctx.sleep(0.2)
        with ctx.store.transaction() as state:
            node = _node(state, ctx)
            node["features"][feature] = True
            node["features"]["RSAT-Clustering-PowerShell"] = True
            node["services"].setdefault("ClusSvc", scenarios.cluster_service())
    return {
        "feature": feature,
        "was_installed": bool(was_installed),
        "install_state": "Installed",
        "success": True,
        "restart_needed": "No",
    }


@handler("prereq_set_gmsa_principals")
def prereq_set_gmsa_principals(ctx) -> dict:
    """Set-ADServiceAccount -PrincipalsAllowedToRetrieveManagedPassword: REPLACES the list."""
    account = str(param(ctx, "ServiceAccount", ""))
    principals = param(ctx, "Principals", [])
    principals = [principals] if isinstance(principals, str) else list(principals or [])
    with ctx.store.transaction() as state:
        if not scenarios.second_hop_ok(state, ctx.auth):
            raise ScriptFailure(AD_UNREACHABLE)
        gmsa = scenarios.find_gmsa(state, account)
        if gmsa is None:
            raise ScriptFailure(f"Cannot find an object with identity: '{account}'.")
        known = {c["sam"].upper(): c["sam"] for c in state["domain"]["computers"].values()}
        known.update({g.upper(): g for g in state["domain"].get("groups", {})})
        resolved = []
        for principal in principals:
            sam = str(principal).split("\\", 1)[-1]
            if sam.upper() not in known:
                raise ScriptFailure(f"Cannot find an object with identity: '{principal}'.")
            resolved.append(known[sam.upper()])
        before = len(gmsa["principals_allowed"])
        gmsa["principals_allowed"] = resolved
    ctx.information(f"Allowing {len(resolved)} principal(s) to retrieve the password.")
    return {"account": gmsa["sam"], "principals_before": before, "principals": resolved}


@handler("prereq_restart_node")
def prereq_restart_node(ctx) -> dict:
    """shutdown /r /t N: clears the pending restart and moves the boot time forward.

    The node is marked down until the restart is over (`down_until`); the protocol layer may use it
    to refuse connections meanwhile.
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
    ctx.information(f"{ctx.node} will restart in {delay} seconds.")
    return {
        "computer_name": node["name"],
        "boot_time": before,
        "restart_in": delay,
        "restart_queued": True,
    }
