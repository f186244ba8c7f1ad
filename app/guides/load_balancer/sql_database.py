"""Step 2: the database, prepared in advance, opened with the farm's connection string from every
node, as the service account where Windows lets a task log on as it.

Phases: "as_service" (lb_sql_connection_test in a scheduled task as the service account, every
node), then "as_operator" (the same script with the operator's identity, only on nodes where no
task could log on as the account: a gMSA without "Log on as a batch job"), then the verdict.
"""

from __future__ import annotations

from app import validators
from app.guides.load_balancer.farm import Farm, check
from app.guides.shared import checks
from app.guides.shared.flow import failure_checks, needs_attention, outputs
from app.remote.errors import is_second_hop
from app.steps import Action, ActionResult, Check, Finish, Phase, RunView, Step
from app.wizard import route

SCRIPT = "lb_sql_connection_test"
NO_TASK_AS_ACCOUNT = ("log on as a batch job", "batch logon")


class SqlDatabase(Step):
    """Opens the shared database from each node with the exact connection string."""

    key = "sql_database"
    title = "SQL database"
    purpose = "Prove that every node opens the farm's database with the same connection string."
    guidance = (
        "A farm keeps every setting except each node's host configuration in one SQL Server "
        "database, so the database must exist before the first node is installed and every node "
        "must reach it. SQL Server Express cannot be shared between servers.",
        "The wizard opens the connection string from each node the way the service will: as the "
        "service account, in a short scheduled task. Where Windows does not let a task log on as "
        "that account, it opens it with your account instead and says so.",
    )
    read_only = True

    def preview(self, view: RunView) -> list[Phase]:
        farm = Farm.of(view)
        return [_as_service(view, farm, view.node_names), _as_operator(view, farm, view.node_names)]

    def advance(self, view: RunView) -> Phase | Finish:
        farm = Farm.of(view)
        problems = _input_problems(farm)
        if problems:
            return needs_attention("Correct the Prerequisites inputs first.", problems)
        service = view.phase("as_service")
        if service is None:
            return _as_service(view, farm, view.node_names)
        fallback = [n for n, r in service.items() if not r.ok and _no_task_logon(r)]
        if fallback and view.phase("as_operator") is None:
            return _as_operator(view, farm, fallback)
        return _verdict(view, farm)

    def drift_check(self, view: RunView) -> Phase | None:
        farm = Farm.of(view)
        if view.phase("as_service") is None and not _input_problems(farm):
            return _as_service(view, farm, view.node_names)
        service = view.phase("as_service") or {}
        fallback = [n for n, r in service.items() if not r.ok and _no_task_logon(r)]
        if fallback and view.phase("as_operator") is None:
            return _as_operator(view, farm, fallback)
        return None


def _input_problems(farm: Farm) -> list[Check]:
    found = []
    try:
        validators.sql_connection_string(farm.connection_string)
    except ValueError as error:
        found.append(
            check(
                "input:sql_connection_string",
                None,
                "SQL Server connection string",
                "fail",
                str(error),
                "Correct it on the Prerequisites step.",
            )
        )
    try:
        validators.gmsa(farm.account)
    except ValueError as error:
        found.append(
            check(
                "input:gmsa",
                None,
                "Service account",
                "fail",
                str(error),
                "Correct it on the Prerequisites step.",
            )
        )
    return found


def _node(view: RunView, name: str):
    return next(n for n in view.nodes if n.name == name)


def _as_service(view: RunView, farm: Farm, nodes: list[str]) -> Phase:
    actions = tuple(
        route.as_service_account(
            _node(view, n),
            SCRIPT,
            farm.account,
            {"ConnectionString": farm.connection_string},
            label=f"Open the database from {n}",
        )
        for n in nodes
    )
    return Phase("as_service", "Open the database as the service account", actions)


def _as_operator(view: RunView, farm: Farm, nodes: list[str]) -> Phase:
    actions: tuple[Action, ...] = tuple(
        route.as_operator(
            _node(view, n),
            SCRIPT,
            {"ConnectionString": farm.connection_string},
            label=f"Open the database from {n} with your account",
            timeout=300,
        )
        for n in nodes
    )
    return Phase("as_operator", "Open the database with your account", actions)


def _no_task_logon(result: ActionResult) -> bool:
    text = (result.error_message or "").lower()
    return any(hint in text for hint in NO_TASK_AS_ACCOUNT)


def _verdict(view: RunView, farm: Farm) -> Finish:
    service = view.phase("as_service") or {}
    operator = view.phase("as_operator") or {}
    found: list[Check] = []
    readings: dict[str, dict] = {}
    for node in view.node_names:
        result = service.get(node)
        if node in operator:
            found.append(
                check(
                    "sql_as_account",
                    node,
                    f"Service account sign-in from {node}",
                    "warn",
                    f"Not verified: {result.error_message if result else 'no task ran'}",
                    "Windows did not let a task log on as the service account here, so the "
                    "database was opened with your account. The service itself only needs 'Log "
                    "on as a service'; the first node's health check shows whether it signs in.",
                )
            )
            result = operator[node]
        if result is None:
            continue
        if not result.ok or not isinstance(result.data, dict):
            found += failure_checks({node: result}, "sql_open", "Opening the database")
            continue
        readings[node] = result.data
        found += _node_checks(farm, node, result.data, as_account=node not in operator)
    found += _same_server(readings)
    artifacts = {
        "nodes": {
            n: {k: d.get(k) for k in ("identity", "login", "version", "edition", "is_db_owner")}
            for n, d in outputs({**service, **operator}).items()
        }
    }
    if any(c.status == "fail" for c in found):
        return needs_attention("Some nodes cannot use the farm's database.", found, artifacts)
    target, _ = checks.parse_target(view.all_inputs.get("prerequisites", {}))
    summary = f"Every node opened {target.database if target else 'the database'} with the farm's connection string."
    return Finish("done", summary, tuple(found), (), artifacts)


def _node_checks(farm: Farm, node: str, data: dict, as_account: bool) -> list[Check]:
    title = f"Database from {node}"
    if not data.get("opened"):
        error = str(data.get("error") or "no detail")
        advice = (
            checks.DOUBLE_HOP
            if is_second_hop(error, reaches_past_node=True)
            else "Check that the server name resolves from the node, that SQL Server accepts TCP "
            "connections on its port through every firewall between them, and that the login "
            "exists (the DBA can run the statements the Prerequisites step printed)."
        )
        return [check("sql_open", node, title, "fail", error, advice)]
    found = []
    if not data.get("integrated_security"):
        found.append(
            check(
                "sql_integrated",
                node,
                f"Windows sign-in on {node}",
                "fail",
                "The connection string does not ask for Integrated Security.",
                "Add Integrated Security=true: the service signs in with its own Windows account.",
            )
        )
    edition = str(data.get("edition") or "")
    if data.get("engine_edition") == 4 or "express" in edition.lower():
        found.append(
            check(
                "sql_edition",
                node,
                "SQL Server edition",
                "fail",
                edition,
                "SQL Server Express cannot be shared by a farm; use Standard, Enterprise, Azure "
                "SQL or Amazon RDS.",
            )
        )
    major = checks.version_tuple(str(data.get("version") or ""))[:1]
    needed = checks.SQL_MIN_MAJOR.get(farm.major, 14)
    if major and major[0] < needed:
        found.append(
            check(
                "sql_version",
                node,
                "SQL Server version",
                "fail",
                f"Version {data.get('version')}.",
                f"Access Manager {farm.major}.x needs {checks.SQL_NAMES[needed]} or later.",
            )
        )
    if as_account and not data.get("is_db_owner"):
        found.append(
            check(
                "sql_owner",
                node,
                f"Database role of the service account ({node})",
                "fail",
                f"{data.get('login')} is not db_owner of {data.get('current_database')}.",
                "Ask the DBA to add the account to db_owner on the database.",
            )
        )
    if not found:
        who = data.get("login") or data.get("identity")
        found.append(
            check(
                "sql_open",
                node,
                title,
                "pass",
                f"Opened {data.get('current_database')} on {data.get('data_source')} as {who} "
                f"({edition}, {data.get('version')}).",
            )
        )
    return found


def _same_server(readings: dict[str, dict]) -> list[Check]:
    versions = {n: d.get("version") for n, d in readings.items() if d.get("opened")}
    if len(set(versions.values())) > 1:
        seen = ", ".join(f"{n}: {v}" for n, v in versions.items())
        return [
            check(
                "sql_same_server",
                None,
                "One database for the whole farm",
                "fail",
                seen,
                "The nodes reached different SQL Servers: the name resolves differently on "
                "some of them. Use one name every node resolves to the same server.",
            )
        ]
    return []


STEP = SqlDatabase()
