"""Pure verdicts for the Prerequisites step: recorded script output in, `Check`s out.

Nothing here runs anything. Each function takes the parsed JSON of one script (or the form inputs)
and says pass / warn / fail / info with the evidence it saw and what the operator should do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from app import validators
from app.remote.errors import ACCESS_DENIED, REMEDIATION, is_second_hop
from app.steps import ActionResult, Check

KDS_DELAY = timedelta(hours=10)
MIN_NODE_OS = (10, 0, 14393)
MIN_DC_OS = (6, 3)
SQL_MIN_MAJOR = {2: 14, 3: 15}
SQL_NAMES = {14: "SQL Server 2017", 15: "SQL Server 2019"}
DOUBLE_HOP = (
    "The node could not pass your credentials on to a third server (the second hop), or that "
    "server refused them. The wizard runs such checks in a scheduled task with your credentials; "
    "if that route is refused here, connect to the nodes with CredSSP, or run this check on the "
    "other server yourself, then run the checks again."
)


@dataclass(frozen=True)
class Target:
    """The form inputs, validated again and split into what the scripts take."""

    version: str
    gmsa: str
    gmsa_domain: str
    gmsa_sam: str
    sql_source: str
    sql_host: str
    sql_port: int
    database: str

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    def node_params(self) -> dict[str, Any]:
        """Parameters of prereq_node_facts.ps1 (local facts and the SQL port)."""
        return {"SqlHost": self.sql_host, "SqlPort": self.sql_port}

    def sql_params(self) -> dict[str, Any]:
        """Parameters of prereq_sql_facts.ps1."""
        return {"SqlServer": self.sql_source, "Account": self.gmsa, "Database": self.database}


def parse_target(inputs: dict[str, Any]) -> tuple[Target | None, list[Check]]:
    """A Target from the saved form, or failed checks naming each unusable input."""
    problems: list[Check] = []
    values: dict[str, Any] = {}
    rules = {
        "ams_version": ("Access Manager version", validators.ams_version),
        "gmsa": ("Service account", validators.gmsa),
        "sql_connection_string": ("SQL Server connection string", validators.sql_connection_string),
    }
    for key, (title, rule) in rules.items():
        try:
            values[key] = rule(str(inputs.get(key) or ""))
        except ValueError as error:
            problems.append(
                Check(
                    f"input:{key}",
                    title,
                    "fail",
                    str(error),
                    "Correct the value in the form above and run the checks again.",
                )
            )
    if problems:
        return None, problems
    parts = validators.parse_connection_string(values["sql_connection_string"])
    source = next(
        parts[k]
        for k in ("server", "data source", "address", "addr", "network address")
        if k in parts
    )
    database = next((parts[k] for k in ("database", "initial catalog") if k in parts), "")
    host, port = split_sql_source(source)
    domain, sam = values["gmsa"].split("\\", 1)
    return Target(
        values["ams_version"],
        values["gmsa"],
        domain,
        sam,
        source,
        host,
        port,
        database or "AccessManager",
    ), []


def split_sql_source(source: str) -> tuple[str, int]:
    """Host and TCP port of a Data Source such as tcp:sql1.corp\\INST,1433."""
    text = source.strip()
    text = text[4:] if text.lower().startswith("tcp:") else text
    host_part, _, port_text = text.partition(",")
    host = host_part.split("\\", 1)[0].strip()
    port = int(port_text) if port_text.strip().isdigit() else 1433
    return host, port


def same_connection(actual: object, wanted: str) -> bool:
    """Two connection strings with the same keywords and values (case-insensitive)."""
    try:
        a = validators.parse_connection_string(str(actual or ""))
        b = validators.parse_connection_string(wanted)
    except ValueError:
        return False
    return bool(a) and {k: v.lower() for k, v in a.items()} == {k: v.lower() for k, v in b.items()}


def connection_check(node: str, actual: object, wanted: str, remediation: str) -> Check | None:
    """A failed check when the node's Parameters\\ConnectionString (`actual`) is not `wanted`,
    None when it is or when nothing is wanted."""
    if not wanted or same_connection(actual, wanted):
        return None
    return Check(
        f"connection_string:{node}",
        f"{node} uses another database connection",
        "fail",
        f"Parameters\\ConnectionString is '{actual or ''}'.",
        remediation,
        node,
    )


def version_tuple(text: str | None) -> tuple[int, ...]:
    """(10, 0, 17763) from '10.0.17763' or '10.0 (17763)'; () when unreadable."""
    return tuple(int(n) for n in re.findall(r"\d+", text or ""))


def parse_time(text: str) -> datetime:
    """An ISO-8601 UTC time as the scripts print it."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def utc(moment: datetime) -> str:
    """A UTC time for people."""
    return moment.strftime("%Y-%m-%d %H:%M UTC")


# ---------------------------------------------------------------------------------------------
# Connectivity and the node itself
# ---------------------------------------------------------------------------------------------


def winrm_check(node: str, result: ActionResult | None) -> Check:
    """Reached and signed in, as a local administrator."""
    title = f"WinRM on {node}"
    if result is None:
        return Check(
            f"winrm:{node}",
            title,
            "fail",
            "The connection test did not run.",
            "Run the checks again.",
            node=node,
        )
    if not result.ok:
        category = result.error_category or "script_error"
        return Check(
            f"winrm:{node}",
            title,
            "fail",
            f"{category}: {result.error_message or 'no detail'}",
            REMEDIATION.get(category, REMEDIATION["script_error"]),
            node=node,
        )
    data = result.data or {}
    evidence = (
        f"Signed in to {data.get('computer_name', node)} as {data.get('user', '?')} "
        f"(PowerShell {data.get('ps_version', '?')})."
    )
    if not data.get("is_admin", True):
        return Check(
            f"winrm:{node}",
            title,
            "fail",
            evidence + " The account is not an administrator.",
            REMEDIATION[ACCESS_DENIED],
            node=node,
        )
    return Check(f"winrm:{node}", title, "pass", evidence, node=node)


def domain_check(node: str, facts: dict, expected: str) -> Check:
    """The node is joined to the deployment's domain."""
    actual = str(facts.get("domain") or "")
    title = f"Domain membership of {node}"
    if not facts.get("part_of_domain", True):
        return Check(
            f"domain:{node}",
            title,
            "fail",
            f"{node} is in workgroup {actual}.",
            f"Join {node} to {expected}: cluster nodes must be domain members.",
            node=node,
        )
    if actual.lower() != expected.lower():
        return Check(
            f"domain:{node}",
            title,
            "fail",
            f"{node} is a member of {actual}, the deployment expects {expected}.",
            "Every node must be in the same domain as the deployment (and as the "
            "service account). Correct the deployment's domain or move the node.",
            node=node,
        )
    return Check(f"domain:{node}", title, "pass", f"Member of {actual}.", node=node)


def os_check(node: str, facts: dict) -> Check:
    """Windows Server 2016 or later passes, 2012 R2 warns, anything else fails."""
    os_info = facts.get("os") or {}
    caption, version = os_info.get("caption", "?"), os_info.get("version", "?")
    evidence = f"{caption} ({version})."
    title = f"Operating system of {node}"
    server = "server" in str(caption).lower() and os_info.get("product_type", 3) != 1
    found = version_tuple(version)
    if not server or found < (6, 3):
        return Check(
            f"os:{node}",
            title,
            "fail",
            evidence,
            "Failover clustering needs Windows Server 2012 R2 or later; use "
            "Windows Server 2016 or later for new clusters.",
            node=node,
        )
    if found < MIN_NODE_OS:
        return Check(
            f"os:{node}",
            title,
            "warn",
            evidence,
            "Windows Server 2012 R2 is out of support; check that your Access Manager "
            "version still supports it, or use Windows Server 2016 or later.",
            node=node,
        )
    return Check(f"os:{node}", title, "pass", evidence, node=node)


def feature_check(node: str, facts: dict, fix: dict | None) -> Check:
    """Failover-Clustering installed; otherwise offer to install it."""
    state = str((facts.get("feature") or {}).get("install_state") or "Unknown")
    title = f"Failover Clustering feature on {node}"
    if state == "Installed":
        return Check(f"feature:{node}", title, "pass", "Installed.", node=node)
    if state == "InstallPending":
        return Check(
            f"feature:{node}",
            title,
            "fail",
            "Installed, waiting for a restart.",
            f"Restart {node} to finish the installation.",
            node=node,
        )
    return Check(
        f"feature:{node}",
        title,
        "fail",
        f"Install state: {state}.",
        "Install it (the wizard can do this for you), or run "
        "Install-WindowsFeature -Name Failover-Clustering -IncludeManagementTools "
        "on the node.",
        node=node,
        fix=fix,
    )


def reboot_check(node: str, facts: dict, fix: dict | None) -> Check:
    """A pending restart makes installers and cluster validation unreliable."""
    pending = facts.get("pending_reboot") or {}
    title = f"Pending restart on {node}"
    if not pending.get("pending"):
        return Check(f"reboot:{node}", title, "pass", "No restart pending.", node=node)
    reasons = ", ".join(pending.get("reasons") or ["unknown"])
    return Check(
        f"reboot:{node}",
        title,
        "warn",
        f"A restart is pending ({reasons}).",
        "Restart the node before installing anything; the wizard can restart it and "
        "wait until it is back.",
        node=node,
        fix=fix,
    )


# ---------------------------------------------------------------------------------------------
# Access Manager version, licence, node count
# ---------------------------------------------------------------------------------------------


def version_check(target: Target) -> Check:
    """v2 is what this wizard installs; v3 works but clustering is deprecated; v1 is refused."""
    title = "Access Manager version"
    if target.major < 2:
        return Check(
            "ams_version",
            title,
            "fail",
            f"Version {target.version} was chosen.",
            "Access Manager 1.x kept its configuration on disk and needs a shared cluster "
            "disk and a registry checkpoint in the cluster role. This wizard builds the "
            "2.x/3.x layout (settings in SQL Server, no shared storage) and cannot install "
            "1.x. Choose a 2.x or 3.x version.",
        )
    if target.major == 3:
        return Check(
            "ams_version",
            title,
            "warn",
            f"Version {target.version} was chosen.",
            "Lithnet deprecated the failover-cluster mode in Access Manager 3.0 and "
            "recommends running several standalone servers behind a load balancer. The "
            "cluster still works; consider the load-balancer design for new installations.",
        )
    if target.major > 3:
        return Check(
            "ams_version",
            title,
            "warn",
            f"Version {target.version} was chosen.",
            "This wizard knows versions 2.x and 3.x; check Lithnet's documentation for "
            "clustering support in this version.",
        )
    return Check("ams_version", title, "pass", f"Version {target.version} will be installed.")


def installed_version(facts: dict) -> str | None:
    """The AMS version found on a node, normalised, or None when not installed."""
    ams = facts.get("ams") or {}
    if not ams.get("installed"):
        return None
    raw = ams.get("registry_version") or ams.get("display_version") or "unknown"
    try:
        return validators.ams_version(str(raw))
    except ValueError:
        return str(raw)


def installed_checks(target: Target, versions: dict[str, str | None]) -> list[Check]:
    """Versions already installed must all equal the chosen one (v2 and v3 never side by side)."""
    found = {node: v for node, v in versions.items() if v}
    if not found:
        return [
            Check(
                "ams_installed",
                "Access Manager already installed",
                "pass",
                "Not installed on any node yet.",
            )
        ]
    checks = []
    for node, version in found.items():
        title = f"Access Manager on {node}"
        if version == target.version:
            checks.append(
                Check(
                    f"ams_installed:{node}",
                    title,
                    "pass",
                    f"Version {version} is already installed; the install step "
                    "will verify it instead of installing again.",
                    node=node,
                )
            )
            continue
        same_major = version.split(".")[0] == target.version.split(".")[0]
        advice = (
            f"Upgrade {node} to {target.version}, or choose {version} for the whole "
            "cluster: every node must run the same version at all times."
            if same_major
            else f"{node} runs a different major version. Version 2 and version 3 nodes must "
            "never run at the same time: remove or upgrade it before continuing."
        )
        checks.append(
            Check(
                f"ams_installed:{node}",
                title,
                "fail",
                f"Version {version} is installed, {target.version} was chosen.",
                advice,
                node=node,
            )
        )
    return checks


def license_check(secret_names: frozenset[str]) -> Check:
    """An Enterprise licence key is stored (its value is never read here)."""
    if "license_key" in secret_names:
        return Check(
            "license",
            "Enterprise license key",
            "pass",
            "A license key is stored, encrypted, for the install step.",
        )
    return Check(
        "license",
        "Enterprise license key",
        "fail",
        "No license key was entered.",
        "High availability is an Enterprise edition feature: enter the license key "
        "in the form above.",
    )


def node_count_check(count: int) -> Check:
    """An even node count needs a witness to keep quorum."""
    if count % 2 == 0:
        return Check(
            "node_count",
            "Number of nodes",
            "info",
            f"{count} nodes (an even number).",
            "A quorum witness is required; you will configure it at the Quorum step.",
        )
    return Check(
        "node_count",
        "Number of nodes",
        "info",
        f"{count} nodes (an odd number).",
        "A quorum witness is optional but recommended; see the Quorum step.",
    )


# ---------------------------------------------------------------------------------------------
# Active Directory: domain controllers, KDS root key, the gMSA
# ---------------------------------------------------------------------------------------------


def _unverified(key: str, title: str, message: str) -> Check:
    advice = (
        DOUBLE_HOP
        if is_second_hop(message, reaches_past_node=True)  # AD is another machine
        else (
            "The check could not read Active Directory from the first node. It needs the Active "
            "Directory PowerShell module (RSAT-AD-PowerShell) there; fix the error and run the "
            "checks again."
        )
    )
    return Check(key, title, "warn", f"Not verified: {message}", advice)


def dc_check(domain: dict) -> Check:
    """At least one domain controller runs Windows Server 2012 R2 (6.3) or later."""
    title = "Domain controller version"
    error = (domain.get("errors") or {}).get("domain")
    if error:
        return _unverified("dc_version", title, error)
    dcs = domain.get("domain_controllers") or []
    listed = "; ".join(f"{dc.get('name')}: {dc.get('os')} {dc.get('os_version')}" for dc in dcs)
    if any(version_tuple(dc.get("os_version"))[:2] >= MIN_DC_OS for dc in dcs):
        return Check("dc_version", title, "pass", listed)
    return Check(
        "dc_version",
        title,
        "fail",
        listed or "No domain controller was found.",
        "Group managed service accounts need at least one domain controller running "
        "Windows Server 2012 R2 or later in the domain.",
    )


def kds_check(domain: dict) -> Check:
    """A KDS root key exists and its EffectiveTime is more than 10 hours in the past."""
    title = "KDS root key"
    error = (domain.get("errors") or {}).get("kds")
    if error:
        return _unverified("kds", title, error)
    now = parse_time(domain["now_utc"])
    keys = domain.get("kds_root_keys") or []
    if not keys:
        return Check(
            "kds",
            title,
            "fail",
            "The domain has no KDS root key.",
            "A Domain Admin must create one on a domain controller with "
            "Add-KdsRootKey -EffectiveImmediately. Domain controllers hand out gMSA "
            "passwords only 10 hours after that (time for replication).",
        )
    usable_from = sorted(parse_time(k["effective_time"]) + KDS_DELAY for k in keys)
    ready = [t for t in usable_from if t <= now]
    if ready:
        return Check("kds", title, "pass", f"{len(keys)} key(s); usable since {utc(ready[0])}.")
    first = usable_from[0]
    hours = max(1, round((first - now).total_seconds() / 3600))
    return Check(
        "kds",
        title,
        "fail",
        f"The newest key is not usable yet: domain controllers use it from {utc(first)} "
        f"(in about {hours} h).",
        f"Wait until {utc(first)}, then run the checks again. Creating the gMSA or "
        "installing the service before then fails.",
    )


def gmsa_checks(target: Target, domain: dict, nodes: list[str], fix: dict | None) -> list[Check]:
    """The account exists in the nodes' domain, is enabled, not delegable, not an admin,
    and every node may retrieve its password."""
    error = (domain.get("errors") or {}).get("gmsa")
    if error:
        return [_unverified("gmsa", "Service account", error)]
    gmsa = domain.get("gmsa") or {}
    if not gmsa.get("found"):
        return [
            Check(
                "gmsa",
                "Service account",
                "fail",
                f"{target.gmsa} does not exist in {domain_name(domain)}.",
                "Create it on a domain controller, for example: New-ADServiceAccount -Name "
                f"{target.gmsa_sam.rstrip('$')} -DNSHostName "
                f"{target.gmsa_sam.rstrip('$')}.{domain_name(domain)} -AccountNotDelegated "
                "$true -KerberosEncryptionType AES128,AES256 "
                f"-PrincipalsAllowedToRetrieveManagedPassword {','.join(sams(nodes))}",
            )
        ]
    checks = [_gmsa_domain(target, domain), _gmsa_flags(target, gmsa)]
    checks.append(_gmsa_principals(target, gmsa, nodes, fix))
    return checks


def domain_name(domain: dict) -> str:
    """The domain's DNS name as the domain facts reported it."""
    return str((domain.get("domain") or {}).get("dns_root") or "the domain")


def sams(nodes: list[str]) -> list[str]:
    """Computer account names of the nodes: NODE$."""
    return [f"{n.upper()}$" for n in nodes]


def _gmsa_domain(target: Target, domain: dict) -> Check:
    netbios = str((domain.get("domain") or {}).get("netbios") or "")
    title = "Service account domain"
    if netbios and netbios.upper() != target.gmsa_domain.upper():
        return Check(
            "gmsa_domain",
            title,
            "fail",
            f"The account is given as {target.gmsa}, the nodes are in {netbios}.",
            "Test-ADServiceAccount only succeeds in the nodes' own domain: use an "
            f"account from {netbios}.",
        )
    return Check("gmsa_domain", title, "pass", f"{target.gmsa} is in the nodes' domain.")


def _gmsa_flags(target: Target, gmsa: dict) -> Check:
    problems, advice = [], []
    if not gmsa.get("enabled", True):
        problems.append("it is disabled")
        advice.append(f"Enable-ADAccount -Identity {target.gmsa_sam}")
    if not gmsa.get("account_not_delegated"):
        problems.append("it can be delegated (AccountNotDelegated is false)")
        advice.append(
            f"Set-ADServiceAccount -Identity {target.gmsa_sam} -AccountNotDelegated $true"
        )
    if gmsa.get("domain_admin"):
        problems.append("it is a member of Domain Admins")
        advice.append("remove it from Domain Admins: the service needs no such rights")
    title = "Service account settings"
    if problems:
        return Check(
            "gmsa_settings",
            title,
            "fail",
            f"{target.gmsa}: " + "; ".join(problems) + ".",
            "On a domain controller: " + "; ".join(advice) + ".",
        )
    return Check(
        "gmsa_settings",
        title,
        "pass",
        f"{target.gmsa} is enabled, not delegable and not a Domain Admin.",
    )


def allowed_sams(gmsa: dict) -> set[str]:
    """Upper-case sam names that may retrieve the password, groups expanded."""
    allowed: set[str] = set()
    for principal in gmsa.get("principals") or []:
        allowed.add(str(principal.get("sam", "")).upper())
        allowed.update(str(m).upper() for m in principal.get("members") or [])
    return allowed


def principals_fix(target: Target, gmsa: dict | None, nodes: list[str], run_on: str) -> dict:
    """Set-ADServiceAccount replaces the whole list, so the script reads it fresh on the node and
    sends it back with the nodes added; `gmsa` (as last read) only names the list shown first."""
    current = [str(p.get("sam")) for p in (gmsa or {}).get("principals") or [] if p.get("sam")]
    missing = [s for s in sams(nodes) if s.upper() not in {c.upper() for c in current}]
    after = current + missing
    label = f"Allow {', '.join(missing or sams(nodes))} to use {target.gmsa}"
    if gmsa is not None:
        label += f"; the list becomes: {', '.join(after)}"
    return {
        "id": "set_gmsa_principals",
        "script": "prereq_set_gmsa_principals",
        "route": "operator",
        "label": label,
        "nodes": [run_on],
        "params": {"ServiceAccount": target.gmsa, "Add": sams(nodes)},
        "principals_after": after if gmsa is not None else None,
    }


def _gmsa_principals(target: Target, gmsa: dict, nodes: list[str], fix: dict | None) -> Check:
    allowed = allowed_sams(gmsa)
    missing = [s for s in sams(nodes) if s.upper() not in allowed]
    listed = ", ".join(str(p.get("sam")) for p in gmsa.get("principals") or []) or "nobody"
    title = "Nodes allowed to use the service account"
    if missing:
        return Check(
            "gmsa_principals",
            title,
            "fail",
            f"Allowed today: {listed}. Missing: {', '.join(missing)}.",
            "Set-ADServiceAccount -PrincipalsAllowedToRetrieveManagedPassword replaces "
            "the whole list, so it must name every node (or a group holding them). The "
            "wizard can set it, keeping the principals already there; a node may need a "
            "restart before it sees the change.",
            fix=fix,
        )
    return Check("gmsa_principals", title, "pass", f"Allowed: {listed}.")


NO_BATCH_LOGON_HINT = "log on as a batch job"
GMSA_LOGON_HINT = "may not retrieve"


def service_account_checks(node: str, target: Target, result: ActionResult | None) -> list[Check]:
    """What a scheduled task running as the gMSA on the node proved: its logon (the node retrieves
    the managed password) and its SQL sign-in (the login and database work from this node)."""
    if result is None:
        return []
    title = f"Service account usable on {node}"
    key = f"gmsa_test:{node}"
    message = result.error_message or ""
    if not result.ok:
        lowered = message.lower()
        if GMSA_LOGON_HINT in lowered:
            return [
                Check(
                    key,
                    title,
                    "fail",
                    f"A scheduled task could not log on as {target.gmsa}: {message}",
                    f"{node} cannot retrieve the account's password. Make sure its computer "
                    "account is allowed (see the check on allowed nodes), that a KDS root key is "
                    "older than 10 hours, and that the account is enabled; after changing the "
                    "list, restart the node or run klist -li 0x3e7 purge on it.",
                    node=node,
                )
            ]
        advice = (
            f"The wizard proves the account by running a short task as {target.gmsa}; Windows "
            "grants 'Log on as a batch job' only to Administrators, Backup Operators and "
            "Performance Log Users by default. The service itself needs only 'Log on as a "
            "service' (the installer grants it), so this is not a failure: the install step "
            "shows whether the service starts. To have it verified here, grant the right to the "
            "account on the node (Local Security Policy, User Rights Assignment) and run the "
            "checks again."
            if NO_BATCH_LOGON_HINT in lowered
            else "Read the error, correct the cause on the node and run the checks again."
        )
        return [Check(key, title, "warn", f"Not verified: {message}", advice, node=node)]
    data = result.data if isinstance(result.data, dict) else {}
    found = [
        Check(
            key,
            title,
            "pass",
            f"A scheduled task logged on as {data.get('identity') or target.gmsa}: {node} "
            "retrieves the managed password.",
            node=node,
        )
    ]
    sql_title = f"SQL sign-in as the service account from {node}"
    if data.get("query_ok"):
        found.append(
            Check(
                f"sql_signin:{node}",
                sql_title,
                "pass",
                f"Signed in to SQL Server as {data.get('login') or target.gmsa}.",
                node=node,
            )
        )
    elif data.get("error"):
        found.append(
            Check(
                f"sql_signin:{node}",
                sql_title,
                "fail",
                str(data["error"]),
                "The service will sign in exactly like this. Ask the DBA to give the account a "
                "login and db_owner on the database:\n" + tsql_for_dba(target, {}),
                node=node,
            )
        )
    return found


# ---------------------------------------------------------------------------------------------
# SQL Server
# ---------------------------------------------------------------------------------------------


def sql_tcp_check(node: str, target: Target, facts: dict) -> Check:
    """TCP to the SQL port from the node."""
    sql = facts.get("sql") or {}
    title = f"SQL Server reachable from {node}"
    where = f"{target.sql_host}:{target.sql_port}"
    if sql.get("tcp"):
        return Check(f"sql_tcp:{node}", title, "pass", f"TCP {where} answered.", node=node)
    return Check(
        f"sql_tcp:{node}",
        title,
        "fail",
        f"TCP {where} did not answer from {node}.",
        "Check the server name, that SQL Server listens on TCP (SQL Server Configuration "
        "Manager) and that firewalls allow the port from every node.",
        node=node,
    )


def tsql_quote(name: str) -> str:
    """A T-SQL identifier in brackets, with ] doubled."""
    return "[" + name.replace("]", "]]") + "]"


def tsql_for_dba(target: Target, sql: dict) -> str:
    """What a DBA runs to give the service account its login, user and db_owner role."""
    login, db = tsql_quote(target.gmsa), tsql_quote(target.database)
    lines = []
    if not sql.get("login_exists"):
        lines.append(f"CREATE LOGIN {login} FROM WINDOWS WITH DEFAULT_DATABASE = {db};")
    lines.append(f"USE {db};")
    if not sql.get("database_user"):
        lines.append(f"CREATE USER {login} FOR LOGIN {login};")
    lines.append(f"ALTER ROLE db_owner ADD MEMBER {login};")
    return "\n".join(lines)


def sql_checks(target: Target, readings: list[dict]) -> list[Check]:
    """Edition, version, database and login, from the first reading that could query SQL (as the
    service account first, else as the operator)."""
    queried = next((s for s in readings if s.get("query_ok")), None)
    if queried is None:
        errors = [s.get("error") for s in readings if s.get("error")]
        if not errors:
            return []
        return [
            Check(
                "sql_query",
                "SQL Server details",
                "warn",
                f"Not verified: {errors[0]}",
                (
                    DOUBLE_HOP
                    if is_second_hop(errors[0], reaches_past_node=True)  # SQL Server
                    else "Check the connection string's server and instance name."
                )
                + " Until then, ask the DBA to confirm: not Express, database "
                f"{target.database} exists, and the service account has access:\n"
                + tsql_for_dba(target, {}),
            )
        ]
    return [
        _edition(queried),
        _sql_version(target, queried),
        _database(target, queried),
        _login(target, queried),
    ]


def _edition(sql: dict) -> Check:
    edition = str(sql.get("edition") or "unknown")
    if sql.get("engine_edition") == 4 or "express" in edition.lower():
        return Check(
            "sql_edition",
            "SQL Server edition",
            "fail",
            f"{edition}.",
            "SQL Server Express cannot serve a cluster. Use a Standard or Enterprise "
            "instance that every node can reach.",
        )
    return Check("sql_edition", "SQL Server edition", "pass", f"{edition}.")


def _sql_version(target: Target, sql: dict) -> Check:
    version = str(sql.get("version") or "")
    found = version_tuple(version)
    needed = SQL_MIN_MAJOR.get(target.major, 14)
    title = "SQL Server version"
    if found and found[0] < needed:
        return Check(
            "sql_version",
            title,
            "fail",
            f"Version {version}.",
            f"Access Manager {target.major}.x needs {SQL_NAMES[needed]} or later.",
        )
    return Check("sql_version", title, "pass", f"Version {version or 'unknown'}.")


def _database(target: Target, sql: dict) -> Check:
    title = f"Database {target.database}"
    if sql.get("database_exists"):
        return Check("sql_database", title, "pass", "The database exists.")
    return Check(
        "sql_database",
        title,
        "fail",
        "The database does not exist.",
        "Ask the DBA to create it before installing:\n"
        f"CREATE DATABASE {tsql_quote(target.database)};",
    )


def _login(target: Target, sql: dict) -> Check:
    title = "SQL access for the service account"
    roles = [str(r) for r in sql.get("database_roles") or []]
    if sql.get("login_exists") and "db_owner" in roles:
        return Check(
            "sql_login",
            title,
            "pass",
            f"{target.gmsa} has a login and is db_owner of {target.database}.",
        )
    if not sql.get("login_exists") and sql.get("can_view_logins") is False:
        return Check(
            "sql_login",
            title,
            "warn",
            "Not verified: your SQL account cannot see other logins.",
            "Ask the DBA to confirm, or to run:\n" + tsql_for_dba(target, sql),
        )
    seen = (
        "no login"
        if not sql.get("login_exists")
        else (f"a login, roles in {target.database}: {', '.join(roles) or 'none'}")
    )
    return Check(
        "sql_login",
        title,
        "fail",
        f"{target.gmsa} has {seen}.",
        "Ask the DBA to run:\n" + tsql_for_dba(target, sql),
    )
