"""The load-balancer guide's Summary as a deliverable: built from what the farm's steps recorded,
shown the same way by the wizard's Summary step, the history page, the printable report and the
JSON export, with high availability said plainly and no secret anywhere.

Two sources of recorded runs: the whole guide run on the strict lab's farm world with the real
Celery worker (tests/guides/load_balancer/farm_run.py's `whole_guide`), and runs seeded
with the shapes those steps record (their artifacts and the scripts' JSON output on each action),
for the cases the lab run does not reach: an excluded node, a skipped farm test, no balancer
address, a password in the connection string."""

import json
import re
from datetime import timedelta

import pytest

from app.deployments.service import create_deployment
from app.events.publish import publish, publish_many
from app.execution.machine.finishing import settle_deployment
from app.extensions import db
from app.models import Deployment, NodeAction, StepRun, User, utcnow
from tests.e2e.conftest import e2e, e2e_worker, lab_calls  # noqa: F401 - fixtures
from tests.execution.harness import exec_app, exec_ctx, exec_db_url  # noqa: F401 - fixtures
from tests.guides.load_balancer.farm_run import whole_guide
from tests.guides.load_balancer.farm_world import GUIDE_KEY, V3
from tests.handover.helpers import DEPLOYMENT, signed_in, user
from tests.history.completed import completed

CANARY = "CANARY-farm-sql-p4ss-7c2d"
THUMBPRINT = "8C9E21EE179319CFFE5C9DFBB647CE89ECB9C38D"
ACCOUNT = "CORP\\svc-ams$"
PLAIN_CONNECTION = "Server=sql1.corp.example.test;Database=AccessManager;Integrated Security=true"
HOST_NAME = "amsweb.corp.example.test"


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html))


def _fact(html: str, name: str) -> str:
    return _text(re.search(rf'data-fact="{name}">(.*?)</dd>', html, re.S)[1]).strip()


def _section(html: str, marker: str, end: str = "</table>") -> str:
    return html.split(marker, 1)[1].split(end, 1)[0]


def _row(html: str, table: str, attribute: str) -> str:
    return _text(_section(html, table).split(attribute, 1)[1].split("</tr>", 1)[0])


def _deliverable(html: str) -> str:
    return _section(html, "data-summary>", "</section>")


def _summary_page(app, dep_id: int) -> str:
    """The Summary step's page as alice, the operator who seeded the runs, sees it."""
    client = signed_in(app, "alice", "operator")
    return client.get(f"/deployments/{dep_id}/steps/summary").get_data(as_text=True)


def _pages(client, dep_id: int) -> dict[str, str]:
    return {
        path: client.get(f"/deployments/{dep_id}/{path}").get_data(as_text=True)
        for path in ("steps/summary", "history", "report")
    }


# ---------------------------------------------------------------- the guide run on the lab


@pytest.mark.slow
def test_the_farm_deliverable_from_a_recorded_lab_run(tmp_path, e2e, lab_calls):  # noqa: F811
    nodes = ["AMS1", "AMS2", "AMS3"]
    whole_guide(tmp_path, nodes, V3, lab_calls)
    dep_id = db.session.scalar(db.select(Deployment.id).order_by(Deployment.id.desc()))
    dep = db.session.get(Deployment, dep_id)
    operator = dep.created_by.username
    assert dep.status == "completed"

    from app.history.timeline import deployment_page

    page = deployment_page(dep)
    summary = page["summary"]
    assert summary["kind"] == "farm"
    # Five rounds, each a passed attempt but the last (done): the next part, never a retry.
    test = next(s for s in page["steps"] if s["key"] == "farm_test")
    assert [a["status"] for a in test["attempts"]] == ["passed"] * 4 + ["succeeded"]
    assert test["retries"] == 0 and test["final"]["status"] == "succeeded"
    assert summary["balancer"] == {
        "address": HOST_NAME,
        "uri": f"https://{HOST_NAME}/health-check",
        "tested": True,
        "validate_certificate": True,
    }
    assert summary["external_host_name"] == HOST_NAME
    assert summary["ams_version"] == V3 and summary["account"] == ACCOUNT
    assert summary["database"]["text"] == "AccessManager on sql1.corp.example.test"
    assert summary["database"]["opened_from"] == nodes
    assert summary["certificate"]["thumbprint"] == THUMBPRINT
    assert summary["certificate"]["subject"] == f"CN={HOST_NAME}"
    assert summary["license"]["text"] == f"Entered on AMS1, confirmed by {operator}"
    assert summary["ip_detection"]["layer"] == "application"
    assert summary["ip_detection"]["known_proxies"] == ["10.20.0.60"]
    assert summary["reached"] == nodes
    for node in summary["nodes"]:
        assert node["service"] == "Running" and node["version"] == V3
        assert node["account"] == ACCOUNT and node["thumbprint"] == THUMBPRINT
        assert node["database"] == "AccessManager on sql1.corp.example.test"
        assert node["same_certificate"] and node["reached"] and node["reached_at"]
        assert node["host_config"]["external_host_name"] == HOST_NAME
        health = node["health"]
        assert health["result"] == "pass" and health["at"]
        assert [(a["path"], a["status_code"]) for a in health["answers"]] == [
            ("/health-check", 200),
            ("/api/v3.0/health-check", 200),
        ]
    # Every round: all in service, each node alone, all back; 4 requests each, all answered 200.
    rounds = [
        (r["in_service"], r["result"], r["answered"], r["requests"]) for r in summary["rounds"]
    ]
    assert rounds == [(None, "pass", 4, 4)] + [(n, "pass", 4, 4) for n in nodes] + [
        (None, "pass", 4, 4)
    ]
    assert summary["rounds"][-1]["reached"] == nodes
    assert all(r["at"] and r["actor"] == operator for r in summary["rounds"])
    # No request under test went out from the node alone in service.
    assert all(r["sent_from"] != r["in_service"] for r in summary["rounds"])
    assert summary["ha"]["status"] == "yes" and "AMS1, AMS2, AMS3" in summary["ha"]["text"]
    assert {
        s["key"]: s["actor"] for s in summary["steps"] if s["key"] != "summary"
    } == dict.fromkeys([s["key"] for s in summary["steps"] if s["key"] != "summary"], operator)
    assert summary["skipped"] == [] and summary["excluded"] == []

    client = signed_in(e2e, "reader", "operator")
    pages = _pages(client, dep_id)
    for path, html in pages.items():
        assert 'data-ha="yes"' in html and "Highly available." in html, path
        assert _fact(html, "balancer") == HOST_NAME, path
        assert _fact(html, "external-host-name").startswith(HOST_NAME), path
        assert "web app on, agent access on" in _fact(html, "external-host-name"), path
        assert _fact(html, "ams-version") == V3 and _fact(html, "account") == ACCOUNT, path
        assert _fact(html, "database").startswith("AccessManager on sql1.corp.example.test"), path
        assert _fact(html, "certificate").startswith(THUMBPRINT), path
        assert "10.20.0.60" in _fact(html, "ip-detection"), path
        for node in nodes:
            row = _row(html, "data-summary-nodes", f'data-node="{node}"')
            assert "Running" in row and V3 in row and ACCOUNT in row and THUMBPRINT in row, path
            assert "AccessManager on sql1.corp.example.test" in row and "UTC" in row, path
            health = _section(html, "data-summary-health")
            assert f'data-health-node="{node}" data-health-path="/api/v3.0/health-check"' in health
            alone = _row(html, "data-summary-rounds", f'data-round="{node}"')
            assert f"only {node}" in alone and "4 of 4 answered 200" in alone, path
            assert "UTC" in alone and operator in alone, path
        assert "Nothing was skipped and no node was excluded." in html, path
        # The deliverable names the database by server and name, never the connection string.
        assert "integrated security" not in _deliverable(html).lower(), path
    wizard = pages["steps/summary"]
    assert 'data-outcome="complete"' in wizard and "farm test through the balancer" in wizard
    for link in ("report", "json", "runbook"):
        assert f'data-link="{link}"' in wizard
    exported = client.get(f"/deployments/{dep_id}/export.json")
    assert exported.status_code == 200
    body = json.loads(exported.get_data(as_text=True))
    assert body["summary"]["ha"]["status"] == "yes"
    assert body["summary"]["certificate"]["thumbprint"] == THUMBPRINT
    assert [r["in_service"] for r in body["summary"]["rounds"]] == [None, *nodes, None]
    assert body["summary"]["nodes"][0]["health"]["answers"][0]["status_code"] == 200
    text = json.dumps(body["summary"])
    assert "Integrated Security" not in text and "integrated security" not in text


# ---------------------------------------------------------------- seeded runs


def _node(name: str, port: int) -> dict:
    return {**DEPLOYMENT["nodes"][0], "name": name, "port": port}


def _action(run, node, phase, script, data, at, params=None):
    run.actions.append(
        NodeAction(
            node_name=node,
            phase=phase,
            script=script,
            parameters=params or {},
            status="succeeded",
            result={"data": data},
            started_at=at - timedelta(seconds=1),
            finished_at=at,
        )
    )


def _run(dep_id, key, actor, at, artifacts, attempt=1, status="succeeded", checks=()):
    run = StepRun(
        deployment_id=dep_id,
        step_key=key,
        attempt=attempt,
        status=status,
        actor_id=actor,
        outcome={
            "status": "done" if status == "succeeded" else "needs_attention",
            "summary": "Recorded.",
            "checks": list(checks),
            "artifacts": artifacts,
        },
        started_at=at,
        finished_at=at + timedelta(seconds=20),
    )
    db.session.add(run)
    return run


def _detect(connection: str) -> dict:
    """ams_detect's output on an installed, configured node of the farm."""
    return {
        "installed": True,
        "version": V3,
        "service": {"status": "Running", "start_type": "Automatic", "account": ACCOUNT},
        "connection_string": connection,
        "configured": 1,
        "binding": {"port": 443, "present": True, "thumbprint": THUMBPRINT},
        "certificate": {
            "thumbprint": THUMBPRINT,
            "present": True,
            "subject": f"CN={HOST_NAME}",
            "not_after": "2027-12-06T22:27:33Z",
            "expired": False,
            "has_private_key": True,
        },
    }


def _health(node: str, codes=(200, 200)) -> dict:
    paths = ("/health-check", "/api/v3.0/health-check")
    return {
        "computer": node,
        "service_status": "Running",
        "answers": [
            {
                "path": p,
                "uri": f"https://{node.lower()}.corp.example.test{p}",
                "status_code": c,
                "error": None if c == 200 else "The remote server returned an error: (503).",
                "thumbprint": THUMBPRINT,
                "elapsed_ms": 12,
            }
            for p, c in zip(paths, codes, strict=False)  # the first codes' paths
        ],
    }


def farm(app, nodes=("AMS1", "AMS2"), excluded=(), test="done", connection=PLAIN_CONNECTION):
    """A farm deployment seeded with what its steps record. test: 'done' (every round through
    the balancer), 'no_balancer' (done on the nodes' health pages only), 'open' (one node reached,
    the next round to come) or 'skipped'."""
    owner = user(app, "alice", "operator")
    ports = {n: 55985 + i for i, n in enumerate(nodes)}
    with app.app_context():
        creator = db.session.get(User, owner)
        body = DEPLOYMENT | {"name": "Farm record", "nodes": [_node(n, ports[n]) for n in nodes]}
        dep = create_deployment(body, creator, guide_key=GUIDE_KEY)
        dep_id = dep.id
        inputs = {
            "prerequisites": {
                "ams_version": V3,
                "gmsa": ACCOUNT,
                "sql_connection_string": connection,
            },
            "first_node": {"certificate_thumbprint": THUMBPRINT, "https_port": 443},
            "host_config": {
                "external_host_name": HOST_NAME,
                "web_app_enabled": True,
                "agent_access_enabled": True,
            },
            "ip_detection": {
                "balancer_layer": "application",
                "forward_limit": 1,
                "known_proxies": "10.20.0.60",
                "known_networks": "10.20.1.0/24",
                "settings_confirmed": True,
            },
            "farm_test": {
                "balancer_address": "" if test == "no_balancer" else HOST_NAME,
                "requests_per_round": 4,
                "validate_certificate": True,
            },
        }
        for key, values in inputs.items():
            dep.step(key).inputs = values
        for node in dep.nodes:
            if node.name in excluded:
                node.excluded, node.exclude_reason = True, "Motherboard replaced"
        active = [n for n in nodes if n not in excluded]
        at = utcnow() - timedelta(hours=2)
        _run(dep_id, "prerequisites", owner, at, {"installed_versions": {}})
        sql = {
            n: {"login": ACCOUNT, "version": "16.0.4135.4", "edition": "Enterprise Edition"}
            for n in active
        }
        _run(dep_id, "sql_database", owner, at + timedelta(minutes=5), {"nodes": sql})
        first = _run(
            dep_id,
            "first_node",
            owner,
            at + timedelta(minutes=10),
            {"node": nodes[0], "version": V3, "account": ACCOUNT},
            checks=[{"key": f"license:{nodes[0]}", "status": "info", "title": "License"}],
        )
        _action(first, nodes[0], "detect", "ams_detect", _detect(connection), at)
        _action(first, nodes[0], "health", "lb_health_probe", _health(nodes[0], (200,)), at)
        others = _run(dep_id, "other_nodes", owner, at + timedelta(minutes=15), {"nodes": {}})
        for n in active:
            _action(
                others, n, "detect", "ams_detect", _detect(connection), at + timedelta(minutes=16)
            )
        host = _run(
            dep_id,
            "host_config",
            owner,
            at + timedelta(minutes=20),
            {"external_host_name": HOST_NAME, "changed": list(active)},
        )
        for n in active:
            read = {
                "installed": True,
                "service_status": "Running",
                "web_app_enabled": True,
                "agent_access_enabled": True,
                "external_host_name": HOST_NAME,
                "binding_thumbprint": THUMBPRINT,
                "certificate_covers": True,
            }
            _action(host, n, "read_after", "lb_host_config_read", read, at + timedelta(minutes=21))
        settings = {
            "resolve_from_x_forwarded_for": True,
            "maximum_entries": 1,
            "known_proxies": ["10.20.0.60"],
            "known_networks": ["10.20.1.0/24"],
        }
        _run(dep_id, "ip_detection", owner, at + timedelta(minutes=25), {"settings": settings})
        statuses = dict.fromkeys(
            ("prerequisites", "sql_database", "first_node", "other_nodes", "host_config"), "done"
        )
        statuses["ip_detection"] = "done"
        if test in ("done", "open"):
            rounds = [("*", [])] + [(n, active[: i + 1]) for i, n in enumerate(active)]
            rounds += [("*", list(active))]
            if test == "open":
                rounds = rounds[:2]
            for i, (in_service, reached) in enumerate(rounds, 1):
                last = i == len(rounds) and test == "done"
                artifacts = {
                    "round": in_service,
                    "reached_before": reached if in_service == "*" else reached[:-1],
                    "status_codes": [200, 200, 200, 200],
                    "reached": reached,
                }
                run = _run(
                    dep_id,
                    "farm_test",
                    owner,
                    at + timedelta(minutes=30 + i),
                    artifacts,
                    attempt=i,
                    status="succeeded" if last else "failed",
                )
                when = at + timedelta(minutes=30 + i, seconds=5)
                for n in active:
                    _action(run, n, "health", "lb_health_probe", _health(n), when)
                sender = next((n for n in active if n != in_service), active[0])
                probe = {"uri": f"https://{HOST_NAME}/health-check", "requests": []}
                _action(run, sender, "balancer", "lb_balancer_probe", probe, when)
            statuses["farm_test"] = "done" if test == "done" else "needs_attention"
        elif test == "no_balancer":
            run = _run(dep_id, "farm_test", owner, at + timedelta(minutes=30), {})
            for n in active:
                _action(run, n, "health", "lb_health_probe", _health(n), at + timedelta(minutes=31))
            statuses["farm_test"] = "done"
        for key, status in statuses.items():
            dep.step(key).status = status
        if test == "skipped":
            dep.step("farm_test").status = "skipped"
            dep.step("farm_test").skip_reason = "The balancer team tests it in their window"
        paused = test == "open"
        extra = settle_deployment(dep, "farm_test", paused=paused)
        db.session.commit()
        publish_many(dep_id, extra)
        if test == "skipped":
            reason = {"reason": "The balancer team tests it in their window"}
            publish(dep_id, "step.skipped", reason, step_key="farm_test", actor_id=owner)
        if excluded:
            payload = {"nodes": list(excluded), "reason": "Motherboard replaced"}
            publish(dep_id, "nodes.excluded", payload, step_key="other_nodes", actor_id=owner)
    return dep_id


def test_a_seeded_farm_shows_every_fact_and_only_the_database_name(app):
    dep_id = farm(app, connection=f"{PLAIN_CONNECTION};User ID=ams;Password={CANARY}")
    client = signed_in(app, "alice", "operator")
    pages = _pages(client, dep_id)
    for path, html in pages.items():
        assert 'data-ha="yes"' in html, path
        assert _fact(html, "database").startswith("AccessManager on sql1.corp.example.test"), path
        assert "SQL Server 16.0.4135.4, Enterprise Edition" in _fact(html, "database"), path
        assert _fact(html, "license").startswith("Entered on AMS1, confirmed by alice"), path
        ip = _fact(html, "ip-detection")
        assert "trusting 10.20.0.60, 10.20.1.0/24" in ip and "confirmed by alice" in ip, path
        for node in ("AMS1", "AMS2"):
            row = _row(html, "data-summary-nodes", f'data-node="{node}"')
            assert "AccessManager on sql1.corp.example.test" in row, path
        deliverable = _deliverable(html)
        assert CANARY not in deliverable and "User ID" not in deliverable, path
    wizard = pages["steps/summary"]
    assert 'data-outcome="complete"' in wizard
    rounds = _section(wizard, "data-summary-rounds")
    assert rounds.count("data-round=") == 4 and "only <strong>AMS2</strong>" in rounds
    export = json.loads(client.get(f"/deployments/{dep_id}/export.json").get_data(as_text=True))
    summary = json.dumps(export["summary"])
    assert CANARY not in summary and "User ID" not in summary
    assert export["summary"]["database"]["text"] == "AccessManager on sql1.corp.example.test"
    assert export["summary"]["nodes"][1]["database"] == "AccessManager on sql1.corp.example.test"


def test_a_farm_left_with_one_node_is_not_highly_available(app):
    dep_id = farm(app, nodes=("AMS1", "AMS2"), excluded=("AMS2",))
    client = signed_in(app, "alice", "operator")
    pages = _pages(client, dep_id)
    wizard = pages["steps/summary"]
    assert 'data-outcome="completed-not-ha"' in wizard and 'data-outcome="complete"' not in wizard
    for path, html in pages.items():
        assert 'data-ha="no"' in html and "Not highly available." in html, path
        assert "Only 1 node (AMS1) remain" in html, path
        items = _text(_section(html, "data-summary-exceptions", "</ul>"))
        assert "Node AMS2 was excluded by alice" in items and "Motherboard replaced" in items, path
        row = _row(html, "data-summary-nodes", 'data-node="AMS2"')
        assert "excluded" in row, path
    assert "completed: <strong data-ha-status>not highly available</strong>" in pages["report"]
    export = json.loads(client.get(f"/deployments/{dep_id}/export.json").data)
    assert export["summary"]["ha"]["status"] == "no" and export["summary"]["reached"] == ["AMS1"]


def test_a_skipped_farm_test_leaves_high_availability_unverified_with_its_reason(app):
    dep_id = farm(app, test="skipped")
    client = signed_in(app, "alice", "operator")
    for path, html in _pages(client, dep_id).items():
        assert 'data-ha="unverified"' in html and "High availability not verified." in html, path
        assert "The farm test was skipped (The balancer team tests it in their window)" in html
        items = _text(_section(html, "data-summary-exceptions", "</ul>"))
        assert "Step Farm test was skipped by alice" in items, path
        assert "The balancer team tests it in their window" in items, path


def test_a_farm_test_without_the_balancer_does_not_claim_high_availability(app):
    html = _summary_page(app, farm(app, test="no_balancer"))
    assert 'data-ha="unverified"' in html and "no balancer address was given" in html
    assert "the farm test was given no balancer address" in html
    assert _fact(html, "balancer") == "not recorded"
    # The nodes' own health pages are still reported, each path with its answer and time.
    health = _section(html, "data-summary-health")
    assert health.count("data-health-node=") == 4 and health.count("badge-pass") == 4


def test_a_farm_test_under_way_is_pending_with_the_nodes_reached_so_far(app):
    html = _summary_page(app, farm(app, test="open"))
    assert 'data-ha="pending"' in html and "Reached through the balancer so far: AMS1." in html
    assert 'data-outcome="open"' in html
    assert _row(html, "data-summary-nodes", 'data-node="AMS1"').count("reached") == 1
    assert "not reached" in _row(html, "data-summary-nodes", 'data-node="AMS2"')


def test_a_farm_with_nothing_run_yet_has_no_deliverable(app):
    user(app, "alice", "operator")
    with app.app_context():
        owner = db.session.scalar(db.select(User).where(User.username == "alice"))
        dep_id = create_deployment(DEPLOYMENT, owner, guide_key=GUIDE_KEY).id
    client = signed_in(app, "alice", "operator")
    page = client.get(f"/deployments/{dep_id}/steps/summary").get_data(as_text=True)
    assert "data-summary" not in page and "The deployment is draft." in page
    assert json.loads(client.get(f"/deployments/{dep_id}/export.json").data)["summary"] is None


def test_farm_availability_edges():
    from app.guides.load_balancer.summary import availability

    tested = {"address": HOST_NAME, "tested": True}
    both = ["AMS1", "AMS2"]
    assert availability(both, "done", None, both, tested)["status"] == "yes"
    one = availability(both, "done", None, ["AMS1"], tested)
    assert one["status"] == "no" and "reached 1 node(s) only (AMS1)" in one["text"]
    assert availability(["AMS1"], "done", None, ["AMS1"], tested)["status"] == "no"
    assert availability([], "skipped", "later", [], tested)["status"] == "no"
    skipped = availability(both, "skipped", "window closed", [], tested)
    assert skipped["status"] == "unverified" and "window closed" in skipped["text"]
    untested = availability(both, "done", None, [], {"address": None, "tested": False})
    assert untested["status"] == "unverified"
    assert availability(both, "needs_attention", None, ["AMS1"], tested)["status"] == "pending"


def test_the_cluster_and_the_farm_each_build_their_own_facts(app):
    cluster_id = completed(app)
    farm_id = farm(app)
    client = signed_in(app, "alice", "operator")
    cluster = client.get(f"/deployments/{cluster_id}/steps/summary").get_data(as_text=True)
    farm_page = client.get(f"/deployments/{farm_id}/steps/summary").get_data(as_text=True)
    assert 'data-fact="cluster"' in cluster and 'data-fact="balancer"' not in cluster
    assert 'data-fact="balancer"' in farm_page and 'data-fact="cluster"' not in farm_page
    assert "data-summary-failover" not in farm_page and "data-summary-rounds" not in cluster
