"""Lab models of the load-balancer guide's scripts: the farm's SQL sign-in, each node's own host
configuration, the HTTPS health-check pages, and a simple round-robin balancer in front of them.

World keys (app/lab/scenarios.py, scenario "farm"): `balancer` {name, fqdn, address, port,
members, drained, cannot_reach, next, probe_path}; per node `ams_health` ("unhealthy" when the
health_fails fault is on). Nothing here answers from a flag the guide set: a page answers 200
only when the node's service runs, its port is bound to a certificate in its store, it was
configured, it can reach its database and the page's feature (web app, agent API) is on, which
is what Access Manager's health check reports (its provider fails when the database connection
fails: lithnet/access-manager WebServiceHealthCheckProvider.cs). The balancer sends a request
only to members it may use: not drained by the operator, reachable, answering its own probe.
"""

from __future__ import annotations

import time

from app.lab.context import ScriptContext
from app.lab.handlers import elapsed, handler
from app.lab.handlers.ams import DEFAULT_HOST_CONFIG, covers
from app.lab.handlers.prerequisites import sql_port_open
from app.lab.scenarios import AMS_KEY, AMS_PARAMETERS_KEY, AMS_SERVICE, find_gmsa, find_node

NOT_RESOLVED = "The remote name could not be resolved: '{host}'"
NO_CONNECTION = "Unable to connect to the remote server"
TLS_FAILED = "The underlying connection was closed: An unexpected error occurred on a send."
TRUST_FAILED = (
    "The underlying connection was closed: Could not establish trust relationship for the "
    "SSL/TLS secure channel."
)
NOT_FOUND = "The remote server returned an error: (404) Not Found."
UNAVAILABLE = "The remote server returned an error: (503) Server Unavailable."


def _major(node: dict) -> int:
    version = str((node["registry"].get(AMS_KEY) or {}).get("Version") or "2")
    return int(version.split(".")[0] or 2)


def api_path(node: dict) -> str:
    """The agent API's health page of the installed major version."""
    return "/api/v3.0/health-check" if _major(node) >= 3 else "/api/v1.0/health-check"


def database_reachable(state: dict, node: dict) -> bool:
    """What the service's own health check asks: can it open its connection string, as its own
    account, from this node."""
    parameters = node["registry"].get(AMS_PARAMETERS_KEY) or {}
    source = ""
    for part in str(parameters.get("ConnectionString") or "").split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() in ("server", "data source", "address", "addr"):
            source = value.strip()
    if not source:
        return False
    host = source.lower().removeprefix("tcp:").split(",", 1)[0].split("\\", 1)[0]
    if not sql_port_open(state, node, host, state["sql"]["port"]):
        return False
    account = str((node["services"].get(AMS_SERVICE) or {}).get("account") or "")
    logins = {name.lower() for name in state["sql"]["logins"]}
    return account.lower() in logins


def bound_certificate(node: dict, port: int) -> dict | None:
    """The certificate HTTP.sys serves on 0.0.0.0:port, when it is in the node's store."""
    binding = (node.get("http_bindings") or {}).get(f"0.0.0.0:{port}")
    if binding is None:
        return None
    return next(
        (
            c
            for c in node.get("certificates", [])
            if c["thumbprint"].upper() == binding["thumbprint"].upper()
        ),
        None,
    )


def node_answer(state: dict, node: dict, port: int, path: str) -> tuple[int | None, str | None]:
    """What Access Manager on `node` answers for `path` over HTTPS on `port`."""
    service = node["services"].get(AMS_SERVICE)
    if not service or service["status"] != "Running":
        return None, NO_CONNECTION
    if bound_certificate(node, port) is None:
        return None, TLS_FAILED
    if int((node["registry"].get(AMS_KEY) or {}).get("Configured") or 0) != 1:
        return 503, UNAVAILABLE  # the placeholder host of a service not configured yet
    if node.get("ams_health") == "unhealthy" or not database_reachable(state, node):
        return 503, UNAVAILABLE
    config = node.get("ams_host_config") or DEFAULT_HOST_CONFIG
    if path.lower() == "/health-check":
        return (200, None) if config.get("web_app_enabled") else (404, NOT_FOUND)
    if path.lower() == api_path(node):
        return (200, None) if config.get("api_enabled") else (404, NOT_FOUND)
    return 404, NOT_FOUND


def resolve(state: dict, host: str) -> tuple[str, dict] | None:
    """The lab's DNS: ("balancer", record) or ("node", record) for a name or address."""
    wanted = host.lower()
    balancer = state.get("balancer")
    if balancer and wanted in {
        balancer["name"].lower(),
        balancer["fqdn"].lower(),
        balancer["address"],
    }:
        return "balancer", balancer
    for node in state["nodes"].values():
        if wanted in {node["name"].lower(), node["fqdn"].lower(), node.get("ip_address")}:
            return "node", node
    return None


def usable_members(state: dict, balancer: dict) -> list[str]:
    """Members the balancer sends requests to: in service, reachable, passing its probe."""
    found = []
    for name in balancer["members"]:
        if name in balancer["drained"] or name in balancer["cannot_reach"]:
            continue
        node = find_node(state, name)
        if node_answer(state, node, balancer["port"], balancer["probe_path"])[0] == 200:
            found.append(name)
    return found


def request(ctx: ScriptContext, host: str, port: int, path: str, validate: bool) -> dict:
    """One HTTPS request from the node, on a new connection, as Invoke-WebRequest reports it;
    a request to the balancer moves its round-robin on (saved in the world)."""
    answer = {"status_code": None, "error": None, "thumbprint": None}
    state = ctx.store.read()
    found = resolve(state, host)
    if found is None:
        answer["error"] = NOT_RESOLVED.format(host=host)
        return answer
    kind, record = found
    if kind == "balancer":
        if port != record["port"]:
            answer["error"] = NO_CONNECTION
            return answer
        with ctx.store.transaction() as live:
            balancer = live["balancer"]
            members = usable_members(live, balancer)
            if not members:
                answer.update(status_code=503, error=UNAVAILABLE)
                return answer
            target = members[balancer["next"] % len(members)]
            balancer["next"] = balancer["next"] + 1
        node = find_node(state, target)
    else:
        node = record
    cert = bound_certificate(node, port)
    if cert is not None:
        answer["thumbprint"] = cert["thumbprint"].upper()
        if validate and not covers(host, cert.get("dns_names", [])):
            answer["error"] = TRUST_FAILED
            return answer
    status, error = node_answer(state, node, port, path)
    answer.update(status_code=status, error=error)
    return answer


@handler("lb_health_probe")
def lb_health_probe(ctx: ScriptContext) -> dict:
    """Each page at HostName (usually the node's own name) with its status and certificate."""
    host = str(ctx.params["HostName"])
    port = int(ctx.params.get("Port") or 443)
    validate = bool(ctx.params.get("ValidateCertificate", False))
    paths = ctx.params.get("Paths") or ["/health-check"]
    paths = [paths] if isinstance(paths, str) else list(paths)
    node = find_node(ctx.store.read(), ctx.node)
    service = node["services"].get(AMS_SERVICE)
    answers = []
    for index, path in enumerate(paths, 1):
        ctx.progress("Health check", f"https://{host}{path}", int(100 * index / (len(paths) + 1)))
        started = time.monotonic()
        uri = f"https://{host}{path}" if port == 443 else f"https://{host}:{port}{path}"
        answer = request(ctx, host, port, str(path), validate)
        answers.append(
            {"path": path, "uri": uri, **answer, "elapsed_ms": int(elapsed(started) * 1000)}
        )
    return {
        "computer": node["name"],
        "host_name": host,
        "service_status": service["status"] if service else "NotInstalled",
        "answers": answers,
    }


@handler("lb_balancer_probe")
def lb_balancer_probe(ctx: ScriptContext) -> dict:
    """Count requests for /health-check at the balancer's address, each on a new connection."""
    address = str(ctx.params["Address"])
    port = int(ctx.params.get("Port") or 443)
    count = int(ctx.params.get("Count") or 6)
    validate = bool(ctx.params.get("ValidateCertificate", True))
    uri = (
        f"https://{address}/health-check"
        if port == 443
        else f"https://{address}:{port}/health-check"
    )
    requests = []
    for index in range(1, count + 1):
        ctx.progress(
            "Requests through the load balancer", f"{index} of {count}", int(100 * index / count)
        )
        requests.append(request(ctx, address, port, "/health-check", validate))
    return {"computer": ctx.node, "address": address, "uri": uri, "requests": requests}


@handler("lb_host_config_read")
def lb_host_config_read(ctx: ScriptContext) -> dict:
    """Get-AmsHostConfig on this node, the certificate bound to the port and whether it covers
    the external host name."""
    node = find_node(ctx.store.read(), ctx.node)
    port = int(ctx.params.get("Port") or 443)
    name = str(ctx.params.get("ExternalHostName") or "")
    service = node["services"].get(AMS_SERVICE)
    config = node.get("ams_host_config") or DEFAULT_HOST_CONFIG
    binding = (node.get("http_bindings") or {}).get(f"0.0.0.0:{port}")
    cert = bound_certificate(node, port)
    return {
        "computer": node["name"],
        "installed": service is not None,
        "version": (node["registry"].get(AMS_KEY) or {}).get("Version"),
        "service_status": service["status"] if service else "NotInstalled",
        "web_app_enabled": config.get("web_app_enabled") if service else None,
        "agent_access_enabled": config.get("api_enabled") if service else None,
        "external_host_name": (config.get("host_name") or None) if service else None,
        "error": None,
        "binding_thumbprint": binding and binding["thumbprint"].upper(),
        "certificate_covers": covers(name, cert.get("dns_names", [])) if cert and name else None,
    }


@handler("lb_sql_connection_test", reaches=("sql",))
def lb_sql_connection_test(ctx: ScriptContext) -> dict:
    """SqlConnection.Open() with the farm's connection string as whoever runs the script (the
    gMSA, in a task); without delegation the sign-in is ANONYMOUS LOGON (rule second_hop)."""
    state = ctx.store.read()
    node = find_node(state, ctx.node)
    sql = state["sql"]
    text = str(ctx.params["ConnectionString"])
    parts = {}
    for part in text.split(";"):
        key, _, value = part.partition("=")
        if key.strip():
            parts[key.strip().lower()] = value.strip()
    source = next(
        (parts[k] for k in ("server", "data source", "address", "addr") if k in parts), ""
    )
    database = next((parts[k] for k in ("database", "initial catalog") if k in parts), "")
    integrated = parts.get("integrated security", "").lower() in ("true", "sspi", "yes")
    result = {
        "computer": node["name"],
        "identity": ctx.username,
        "data_source": source,
        "database": database,
        "integrated_security": integrated,
        "opened": False,
        "login": None,
        "current_database": None,
        "edition": None,
        "engine_edition": None,
        "version": None,
        "is_db_owner": None,
        "error": None,
    }
    host = source.lower().removeprefix("tcp:").split(",", 1)[0].split("\\", 1)[0]
    instance = source.split("\\", 1)[1].split(",", 1)[0] if "\\" in source else "MSSQLSERVER"
    hop = ctx.hop_error("sql")
    if (
        not sql_port_open(state, node, host, sql["port"])
        or instance.lower() != sql["instance"].lower()
    ):
        result["error"] = (
            "A network-related or instance-specific error occurred while establishing a "
            "connection to SQL Server. The server was not found or was not accessible."
        )
        return result
    if hop is not None:
        result["error"] = hop
        return result
    caller = ctx.username
    logins = {name.lower(): value for name, value in sql["logins"].items()}
    login = logins.get(caller.lower())
    if integrated and login is None and find_gmsa(state, caller) is None:
        # The operator's own account, as the prerequisites model treats it: a DBA-like login.
        login = {"default_db": "master", "roles": {db: ["db_owner"] for db in sql["databases"]}}
    if not integrated or login is None:
        result["error"] = f"Login failed for user '{caller}'."
        return result
    databases = {name.lower(): name for name in sql["databases"]}
    name = databases.get((database or login.get("default_db") or "master").lower())
    roles = login.get("roles", {}).get(name or "", None)
    if name is None or roles is None:
        result["error"] = (
            f'Cannot open database "{database}" requested by the login. The login failed.\r\n'
            f"Login failed for user '{caller}'."
        )
        return result
    result.update(
        opened=True,
        login=caller,
        current_database=name,
        edition=sql["edition"],
        engine_edition=sql["engine_edition"],
        version=sql["version"],
        is_db_owner="db_owner" in roles,
    )
    return result
