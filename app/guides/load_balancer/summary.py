"""Step 8: what the farm looks like now and what is left to do.

`Summary.facts` builds the farm's deliverable (app.history.deliverable) from what the steps
recorded: the balancer's address and the external host name, Access Manager, its account, database
and certificate on every node, each node's health-check pages, the farm test's rounds through the
balancer, the IP address detection settings, and whether the farm is highly available (at least
two nodes reached through the balancer). The database is named by server and database only.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from app.guides.facts import HA_MIN_NODES, database_text, ha_verdict, skipped_test, too_few_nodes
from app.steps import Step

if TYPE_CHECKING:  # the history builds the record and calls facts(); guides never import it
    from app.history.deliverable import Record

TEST = "farm_test"
ALL = "*"  # a farm test round with every node in service (app.guides.load_balancer.farm_test)


def _newer(entry: dict, key: str, value: Any, at: datetime | None, source: str) -> None:
    """Keep `value` as the node's `key` reading (with when and where from) unless it is empty."""
    if value in (None, ""):
        return
    entry[key] = value
    entry[f"{key}_at"] = at
    entry[f"{key}_from"] = source


def _installs(record: Record, per_node: dict[str, dict]) -> None:
    """Version, account, database, bound certificate and service state from ams_detect."""
    for key in ("first_node", "other_nodes"):
        final = record.final(key)
        source = record.title(key)
        table = record.artifacts(key).get("nodes") or {}
        for node, row in table.items() if isinstance(table, dict) else ():
            entry = per_node.setdefault(str(node).upper(), {})
            at = (final or {}).get("finished_at")
            _newer(entry, "version", (row or {}).get("version"), at, source)
            _newer(entry, "bound", (row or {}).get("thumbprint"), at, source)
        for action, data in record.outputs(final, "ams_detect"):
            if not data.get("installed"):
                continue
            entry = per_node.setdefault(action.node_name.upper(), {})
            service = data.get("service") or {}
            at = action.finished_at
            _newer(
                entry, "version", data.get("version") or data.get("uninstall_version"), at, source
            )
            _newer(entry, "account", service.get("account"), at, source)
            _newer(entry, "database", database_text(data.get("connection_string")), at, source)
            _newer(entry, "bound", (data.get("binding") or {}).get("thumbprint"), at, source)
            _newer(entry, "service", service.get("status"), at, source)
            cert = data.get("certificate") or {}
            if cert.get("present"):
                entry["certificate"] = {
                    "subject": cert.get("subject"),
                    "not_after": cert.get("not_after"),
                    "expired": bool(cert.get("expired")),
                }


def _host_config(record: Record, per_node: dict[str, dict]) -> None:
    """The external host name and services each node answers with, read after any change."""
    final = record.final("host_config")
    source = record.title("host_config")
    readings = record.outputs(final, "lb_host_config_read")
    for phase in ("read", "read_after"):  # the reading after the change wins
        for action, data in readings:
            if action.phase != phase or not data.get("installed"):
                continue
            entry = per_node.setdefault(action.node_name.upper(), {})
            at = action.finished_at
            entry["host"] = {
                "external_host_name": data.get("external_host_name"),
                "web_app": data.get("web_app_enabled"),
                "agent_access": data.get("agent_access_enabled"),
                "at": at,
            }
            _newer(entry, "service", data.get("service_status"), at, source)
            _newer(entry, "bound", data.get("binding_thumbprint"), at, source)


def _health(record: Record, per_node: dict[str, dict]) -> None:
    """Each node's newest health-check reading: the farm test's, else the first node step's."""
    sources = [(record.final("first_node"), record.title("first_node"))]
    sources += [(a, f"{record.title(TEST)}, attempt {a['attempt']}") for a in record.attempts(TEST)]
    for run, source in sources:
        for action, data in record.outputs(run, "lb_health_probe"):
            entry = per_node.setdefault(action.node_name.upper(), {})
            at = action.finished_at
            answers = [
                {
                    "path": str(a.get("path") or ""),
                    "status_code": a.get("status_code"),
                    "elapsed_ms": a.get("elapsed_ms"),
                    "thumbprint": str(a.get("thumbprint") or "").upper() or None,
                    "error": a.get("error"),
                }
                for a in data.get("answers") or []
                if isinstance(a, dict)
            ]
            entry["health"] = {
                "result": "pass"
                if answers and all(a["status_code"] == 200 for a in answers)
                else "fail",
                "answers": answers,
                "at": at,
                "from": source,
            }
            _newer(entry, "service", data.get("service_status"), at, source)
            served = next((a["thumbprint"] for a in answers if a["thumbprint"]), None)
            _newer(entry, "served", served, at, source)


def _rounds(record: Record) -> list[dict]:
    """Every farm test attempt that sent requests through the balancer, oldest first."""
    rows = []
    for attempt in record.attempts(TEST):
        artifacts = (attempt.get("outcome") or {}).get("artifacts") or {}
        if "round" not in artifacts:
            continue  # stopped at the nodes' own health checks: nothing went to the balancer
        codes = list(artifacts.get("status_codes") or [])
        in_service = str(artifacts.get("round") or ALL)
        sender = next(
            (a["node"] for a in attempt.get("actions") or [] if a.get("phase") == "balancer"),
            None,
        )
        rows.append(
            {
                "attempt": attempt["attempt"],
                "in_service": None if in_service == ALL else in_service,
                "result": "pass" if "reached" in artifacts else "fail",
                "requests": len(codes),
                "answered": sum(1 for c in codes if c == 200),
                "status_codes": codes,
                "reached": list(artifacts.get("reached") or artifacts.get("reached_before") or []),
                "sent_from": sender,
                "actor": attempt.get("actor"),
                "at": attempt.get("finished_at"),
            }
        )
    return rows


def _balancer(record: Record, rounds: list[dict]) -> dict[str, Any]:
    entered = record.inputs(TEST)
    uri = None
    for attempt in record.attempts(TEST):
        for _, data in record.outputs(attempt, "lb_balancer_probe"):
            uri = data.get("uri") or uri
    final = record.final(TEST)
    return {
        "address": entered.get("balancer_address") or None,
        "uri": uri,
        # Done without a balancer address: the nodes' own health pages only.
        "tested": "round" in record.artifacts(TEST) if final else bool(rounds),
        "validate_certificate": entered.get("validate_certificate"),
    }


def _sql(record: Record) -> dict[str, Any]:
    prereq = record.inputs("prerequisites")
    readings = record.artifacts("sql_database").get("nodes") or {}
    first = next(iter(readings.values()), None) or {}
    return {
        "text": database_text(prereq.get("sql_connection_string")),
        "version": first.get("version"),
        "edition": first.get("edition"),
        "opened_from": sorted(str(n) for n in readings),
    }


def _certificate(record: Record, per_node: dict[str, dict], first: str | None) -> dict[str, Any]:
    entered = record.inputs("first_node")
    thumbprint = str(entered.get("certificate_thumbprint") or "").replace(" ", "").upper()
    found = per_node.get(str(first or "").upper(), {}).get("certificate") or {}
    return {
        "thumbprint": thumbprint or None,
        "port": entered.get("https_port") or (443 if thumbprint else None),
        "subject": found.get("subject"),
        "not_after": found.get("not_after"),
    }


def _license(record: Record, first: str | None) -> dict[str, Any]:
    """Where the license was seen, or that the operator confirmed it (kept in the database)."""
    final = record.final("first_node")
    checks = (final or {}).get("outcome", {}).get("checks") or []
    found = next((c for c in checks if str(c.get("key", "")).startswith("license:")), None)
    if not found:
        return {"text": None, "node": first}
    if found.get("status") == "pass":
        text = f"Found on {first}"
    else:
        text = f"Entered on {first}, confirmed by {(final or {}).get('actor') or 'the operator'}"
    return {"text": text, "node": first, "status": found.get("status")}


def _ip_detection(record: Record) -> dict[str, Any]:
    entered = record.inputs("ip_detection")
    final = record.final("ip_detection")
    settings = record.artifacts("ip_detection").get("settings") or {}
    layer = entered.get("balancer_layer") or ("application" if settings else None)
    if final is None:
        text = None
    elif layer == "transport":
        text = "Off: a transport-layer (layer 4) balancer keeps the client's address"
    else:
        proxies = ", ".join(settings.get("known_proxies") or []) or "none"
        networks = ", ".join(settings.get("known_networks") or []) or "none"
        text = (
            f"From X-Forwarded-For; trusted proxies {proxies}; trusted networks {networks}; "
            f"maximum entries {settings.get('maximum_entries') or 1}"
        )
    return {
        "layer": layer if final else None,
        "text": text,
        "known_proxies": list(settings.get("known_proxies") or []),
        "known_networks": list(settings.get("known_networks") or []),
        "maximum_entries": settings.get("maximum_entries"),
        "confirmed_by": (final or {}).get("actor") if layer == "application" else None,
        "at": (final or {}).get("finished_at"),
    }


def availability(
    active: list[str],
    test_status: str,
    skip_reason: str | None,
    reached: list[str],
    balancer: dict[str, Any],
) -> dict[str, Any]:
    """Whether the farm is highly available, in plain words.

    status: 'yes' (two or more nodes, each reached through the balancer), 'no' (fewer than two
    nodes, or the balancer reached fewer than two), 'unverified' (the farm test was skipped, or
    tested the nodes only) or 'pending' (not finished yet)."""
    few = too_few_nodes(
        active,
        "when it stops, the balancer has no other node to send users to. Install another "
        "node with the same account, database and certificate, add it to the balancer's "
        "pool, and run the farm test again in a new deployment.",
    )
    if few:
        return few
    if test_status == "skipped":
        return skipped_test(
            "farm",
            skip_reason,
            "nothing shows that the balancer reaches more than one node. At the balancer, "
            "leave one node in service at a time and check that the external host name answers.",
        )
    if test_status != "done":
        so_far = f" Reached through the balancer so far: {', '.join(reached)}." if reached else ""
        return ha_verdict("pending", "The farm test has not finished." + so_far)
    if not balancer.get("tested"):
        return ha_verdict(
            "unverified",
            "The farm test asked each node's own health-check page only: no balancer "
            "address was given, so nothing shows that the balancer reaches the nodes. Run the "
            "farm test with the balancer's address.",
        )
    if len(reached) < HA_MIN_NODES:
        return ha_verdict(
            "no",
            f"The balancer reached {len(reached)} node(s) only "
            f"({', '.join(reached) or 'none'}) during the farm test.",
        )
    return ha_verdict(
        "yes",
        f"The balancer at {balancer.get('address')} reached each of {len(reached)} nodes "
        f"({', '.join(reached)}) with the others drained, and answered with every node back in "
        "service during the farm test.",
    )


def farm_facts(record: Record) -> dict | None:
    """The farm's deliverable, or None when none of its steps has run yet."""
    if not any(record.attempts(s["key"]) for s in record.step_rows):
        return None
    deployment = record.deployment
    per_node: dict[str, dict] = {}
    _installs(record, per_node)
    _host_config(record, per_node)
    _health(record, per_node)
    rounds = _rounds(record)
    first = record.artifacts("first_node").get("node") or (
        deployment.nodes[0].name if deployment.nodes else None
    )
    certificate = _certificate(record, per_node, first)
    active = record.active_nodes
    active_upper = {n.upper() for n in active}
    passed_rounds = [r for r in rounds if r["result"] == "pass"]
    reached_all = list(
        record.artifacts(TEST).get("reached")
        or (passed_rounds[-1]["reached"] if passed_rounds else [])
    )
    reached = [n for n in reached_all if n.upper() in active_upper]
    reached_at = {
        r["in_service"].upper(): r["at"] for r in passed_rounds if r["in_service"] is not None
    }
    nodes = []
    for n in deployment.nodes:
        entry = per_node.get(n.name.upper(), {})
        served = entry.get("served") or entry.get("bound")
        nodes.append(
            {
                "name": n.name,
                "host": n.host,
                "first": n.name.upper() == str(first or "").upper(),
                "excluded": n.excluded,
                "exclude_reason": n.exclude_reason,
                "service": entry.get("service"),
                "service_at": entry.get("service_at"),
                "service_from": entry.get("service_from"),
                "version": entry.get("version"),
                "account": entry.get("account"),
                "database": entry.get("database"),
                "thumbprint": served,
                "thumbprint_from": "served over HTTPS" if entry.get("served") else "bound",
                "same_certificate": bool(served)
                and (not certificate["thumbprint"] or served == certificate["thumbprint"]),
                "host_config": entry.get("host"),
                "health": entry.get("health"),
                "reached": n.name in reached,
                "reached_at": reached_at.get(n.name.upper()),
            }
        )
    host_inputs = record.inputs("host_config")
    test = record.row(TEST)
    balancer = _balancer(record, rounds)
    return {
        "kind": "farm",
        "balancer": balancer,
        "external_host_name": record.artifacts("host_config").get("external_host_name")
        or host_inputs.get("external_host_name")
        or None,
        "services": {
            "web_app": host_inputs.get("web_app_enabled"),
            "agent_access": host_inputs.get("agent_access_enabled"),
        }
        if host_inputs
        else None,
        "ams_version": record.inputs("prerequisites").get("ams_version") or None,
        "account": record.inputs("prerequisites").get("gmsa") or None,
        "database": _sql(record),
        "certificate": certificate,
        "license": _license(record, first),
        "ip_detection": _ip_detection(record),
        "nodes": nodes,
        "active_nodes": active,
        "rounds": rounds,
        "reached": reached,
        "steps": record.steps(),
        "skipped": record.skipped(),
        "excluded": record.excluded(),
        "ha": availability(
            active, test.get("status", "not_started"), test.get("skip_reason"), reached, balancer
        ),
    }


class Summary(Step):
    """No remote work: the deployment's deliverable (app.history.deliverable)."""

    key = "summary"
    title = "Summary"
    purpose = "Review the farm and keep its report."
    guidance = (
        "The farm is installed: every node serves the same certificate under the balancer's "
        "name and shares one database. Configure Access Manager's features (authentication, "
        "authorization rules, agents) in the configuration tool of any node; they apply to all.",
        "Keep session persistence on at the balancer, set a master key recovery password for "
        "the database and keep it offline, and upgrade every node to the same version together.",
    )
    runnable = False

    def facts(self, record: Record) -> dict | None:
        """The deliverable's facts for this guide (app.history.deliverable.build calls it)."""
        return farm_facts(record)


STEP = Summary()
