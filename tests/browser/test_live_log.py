"""The live log: 10,000 replayed events render fast and once each, new events stream in live,
nothing is lost or doubled across a dropped connection, and a finished step reloads once."""

import itertools
import time

import pytest

from app.events.publish import publish, publish_many

pytestmark = pytest.mark.browser

STEP = "prerequisites"
KINDS = ("node.output", "node.information", "node.warning", "node.error")


def _lines(start: int, count: int, tag: str = "line") -> list[dict]:
    """Events that each produce one log line, alternating between the two nodes."""
    return [
        {
            "kind": KINDS[i % len(KINDS)],
            "payload": {"text": f"{tag} {i:05d} " + "x" * (i % 70)},
            "step_key": STEP,
            "node": f"AMS-NODE{1 + i % 2}",
        }
        for i in range(start, start + count)
    ]


def _inject(app, deployment_id: int, items: list[dict], chunk: int = 2000) -> None:
    with app.app_context():
        for i in range(0, len(items), chunk):
            publish_many(deployment_id, items[i : i + chunk])


def _open_step(page, deployment_id: int) -> float:
    """Open the step page and wait until history is rendered; returns ms since navigation start."""
    page.goto(f"/deployments/{deployment_id}/steps/{STEP}")
    page.wait_for_function("() => window.amswLive && window.amswLive.ready", timeout=15_000)
    page.wait_for_function(
        "() => document.querySelector('[data-conn]').dataset.state === 'connected'"
    )
    return page.evaluate("performance.now()")


def _running_attempt(app, deployment_id: int, nodes: tuple[str, ...] = ()) -> tuple[int, list]:
    """Attempt 1 of STEP, running, with a queued detect action per node; (run id, action ids)."""
    from app.extensions import db
    from app.models import NodeAction, StepRun, utcnow

    with app.app_context():
        run = StepRun(
            deployment_id=deployment_id,
            step_key=STEP,
            attempt=1,
            status="running",
            started_at=utcnow(),
        )
        run.actions = [
            NodeAction(node_name=node, phase="detect", script="probe", status="queued")
            for node in nodes
        ]
        db.session.add(run)
        db.session.commit()
        return run.id, [a.id for a in run.actions]


def _log_state(page) -> dict:
    return page.evaluate(
        """() => {
          const view = document.querySelector('[data-log]');
          const rows = [...view.querySelectorAll('.log-line')];
          const seqs = rows.map(r => Number(r.dataset.seq));
          return {
            lines: window.amswLive.lines(), seen: window.amswLive.seen(),
            lastSeq: window.amswLive.lastSeq(), domRows: rows.length,
            uniqueDom: new Set(seqs).size, firstDom: Math.min(...seqs), lastDom: Math.max(...seqs),
            scrollTop: view.scrollTop, scrollHeight: view.scrollHeight,
            clientHeight: view.clientHeight,
            follow: document.querySelector('[data-follow]').checked,
          };
        }"""
    )


def test_ten_thousand_events_render_once_and_stay_scrollable(app, signed_in, deployment_id, shot):
    page = signed_in
    _inject(app, deployment_id, _lines(0, 10_000))
    expected = 10_001  # deployment.created + 10,000 lines

    elapsed_ms = _open_step(page, deployment_id)
    page.wait_for_function(f"() => window.amswLive.lines() >= {expected}")
    state = _log_state(page)
    print(f"10,001 events rendered {elapsed_ms:.0f} ms after navigation start")
    # A hang guard, not a benchmark: alone it takes about 1.5 s here; with CI's two suites
    # sharing two CPUs it took 4 s once. Rendering stays cheap because the log is virtualised
    # (asserted below), whatever the machine's speed.
    assert elapsed_ms < 8000
    assert state["lines"] == expected and state["seen"] == expected
    assert state["lastSeq"] == expected
    # Virtualised: a few dozen DOM rows, all distinct, the newest at the bottom (following).
    assert state["domRows"] < 200 and state["uniqueDom"] == state["domRows"]
    assert state["lastDom"] == expected
    assert state["scrollHeight"] >= expected * 17
    assert state["scrollTop"] + state["clientHeight"] >= state["scrollHeight"] - 20
    page.locator(".log").scroll_into_view_if_needed()
    shot(page, "live-log-10000", full_page=False)

    # Home in the focused log shows the oldest lines and stops following.
    page.locator("[data-log]").focus()
    page.keyboard.press("Home")
    page.wait_for_function("() => document.querySelector('[data-log]').scrollTop === 0")
    page.wait_for_function("() => !document.querySelector('[data-follow]').checked")
    assert _log_state(page)["firstDom"] == 1
    page.locator("[data-log]").evaluate("v => { v.scrollTop = v.scrollHeight / 2 }")
    page.wait_for_function(
        "() => (() => { const r = document.querySelectorAll('[data-log] .log-line');"
        " return r.length && Number(r[0].dataset.seq) > 4000; })()"
    )

    # Live: new events appear without a reload; while not following, the view stays where it is.
    top_before = _log_state(page)["scrollTop"]
    _inject(app, deployment_id, _lines(10_000, 50, tag="live"))
    page.wait_for_function(f"() => window.amswLive.lines() === {expected + 50}", timeout=10_000)
    assert _log_state(page)["scrollTop"] == top_before

    # Ticking Follow again jumps to the end and keeps the newest line in view.
    page.get_by_label("Follow new lines").check()
    _inject(app, deployment_id, _lines(10_050, 5, tag="tail"))
    page.wait_for_function(f"() => window.amswLive.lines() === {expected + 55}")
    page.wait_for_function(
        "() => (() => { const v = document.querySelector('[data-log]');"
        " return v.scrollTop + v.clientHeight >= v.scrollHeight - 20; })()"
    )
    state = _log_state(page)
    assert state["lastDom"] == expected + 55 and state["uniqueDom"] == state["domRows"]
    assert "tail 10054" in page.locator("[data-log]").inner_text()


def test_no_event_lost_or_doubled_when_the_stream_drops(app, signed_in, deployment_id, cutter):
    """The server ends the stream mid-run: the browser resumes from Last-Event-ID."""
    page = signed_in
    _inject(app, deployment_id, _lines(0, 20))
    _open_step(page, deployment_id)
    _inject(app, deployment_id, _lines(20, 5, tag="live"))  # seen over SSE: sets lastEventId
    page.wait_for_function("() => window.amswLive.lines() === 26")
    resumed = len(cutter.resumed_from)

    cutter.cut()  # the next chunk is swallowed and the connection closes
    _inject(app, deployment_id, _lines(25, 30, tag="across-the-cut"))
    page.wait_for_function("() => window.amswLive.lines() === 56", timeout=20_000)
    assert set(cutter.resumed_from[resumed:]) == {"26"}  # EventSource's own Last-Event-ID
    page.wait_for_function(
        "() => document.querySelector('[data-conn]').dataset.state === 'connected'"
    )

    _inject(app, deployment_id, _lines(55, 10, tag="after"))
    page.wait_for_function("() => window.amswLive.lines() === 66")
    time.sleep(1.5)  # give a duplicate replay the chance to show up
    state = _log_state(page)
    assert state["lines"] == 66 and state["seen"] == 66 and state["lastSeq"] == 66
    assert "across-the-cut 00025" in "\n".join(page.evaluate("window.amswLive.text()").splitlines())


def test_offline_then_online_keeps_every_line(app, signed_in, deployment_id, shot):
    page = signed_in
    _inject(app, deployment_id, _lines(0, 20))
    _open_step(page, deployment_id)
    page.wait_for_function("() => window.amswLive.lines() === 21")
    page.context.set_offline(True)
    page.wait_for_function(
        "() => document.querySelector('[data-conn]').dataset.state === 'offline'"
    )
    page.locator(".log").scroll_into_view_if_needed()
    shot(page, "live-log-offline", full_page=False)
    _inject(app, deployment_id, _lines(20, 30, tag="while-offline"))
    page.context.set_offline(False)
    page.wait_for_function("() => window.amswLive.lines() === 51", timeout=20_000)
    page.wait_for_function(
        "() => document.querySelector('[data-conn]').dataset.state === 'connected'"
    )
    state = _log_state(page)
    assert state["lines"] == 51 and state["seen"] == 51


def test_node_rows_and_sidebar_update_live(app, signed_in, deployment_id):
    page = signed_in
    _open_step(page, deployment_id)
    with app.app_context():
        publish(deployment_id, "step.started", {"attempt": 1}, step_key=STEP, step_run_id=None)
        publish(
            deployment_id,
            "phase.started",
            {
                "phase": "detect",
                "title": "Check every node",
                "changes_state": False,
                "actions": [
                    {"id": 9001, "node": "AMS-NODE1", "script": "Test-Prerequisites"},
                    {"id": 9002, "node": "AMS-NODE2", "script": "Test-Prerequisites"},
                ],
            },
            step_key=STEP,
        )
        publish(
            deployment_id,
            "node.started",
            {"script": "Test-Prerequisites", "phase": "detect"},
            step_key=STEP,
            node="AMS-NODE1",
            node_action_id=9001,
        )
        publish(
            deployment_id,
            "node.progress",
            {"activity": "Checking", "status": "SQL Server", "percent": 40},
            step_key=STEP,
            node="AMS-NODE1",
            node_action_id=9001,
        )
    row = page.locator('tr[data-action="9001"]')
    row.wait_for()
    page.wait_for_function(
        "() => document.querySelector('tr[data-action=\"9001\"] progress').value === 40"
    )
    assert "running" in row.text_content()
    assert "queued" in page.locator('tr[data-action="9002"]').text_content()
    assert "AMS-NODE1" in row.text_content()
    state = page.locator('[data-step-state="prerequisites"]')
    assert state.text_content() == "in progress"
    # The heading's badge follows the stream too, not only the sidebar.
    assert page.locator("h1 [data-title-state]").text_content() == "in progress"
    with app.app_context():
        publish(
            deployment_id,
            "node.finished",
            {"status": "failed", "message": "SQL unreachable"},
            step_key=STEP,
            node="AMS-NODE1",
            node_action_id=9001,
        )
    page.wait_for_function(
        "() => document.querySelector('tr[data-action=\"9001\"]').innerText.includes('SQL unreachable')"
    )
    assert "failed" in row.text_content()


def test_finished_step_reloads_the_page_once(app, signed_in, deployment_id):
    page = signed_in
    _open_step(page, deployment_id)
    loads: list[str] = []
    page.on("load", lambda: loads.append(page.url))
    with app.app_context():
        publish(deployment_id, "step.finished", {"status": "done"}, step_key=STEP)
    page.wait_for_function(
        "() => window.amswLive && window.amswLive.ready && window.amswLive.lastSeq() >= 2",
        timeout=15_000,
    )
    page.wait_for_timeout(2500)  # a reload loop would show up as more loads here
    assert len(loads) == 1
    # An event for another step never reloads this page.
    with app.app_context():
        publish(deployment_id, "step.finished", {"status": "done"}, step_key="quorum")
    page.wait_for_function("() => window.amswLive.lastSeq() >= 3")
    page.wait_for_timeout(1000)
    assert len(loads) == 1


def test_running_attempt_updates_live_then_shows_its_outcome(app, signed_in, deployment_id):
    """A run rendered as running: rows follow node events, then step.finished + step.paused (as the
    execution service publishes them) reload the page once, and the outcome and decision appear."""
    from app.extensions import db
    from app.models import Deployment, StepRun, utcnow

    page = signed_in
    run_id, action_ids = _running_attempt(app, deployment_id, nodes=("AMS-NODE1", "AMS-NODE2"))
    _open_step(page, deployment_id)
    expect_text = page.locator(".elapsed")
    page.wait_for_function(
        "() => document.querySelector('.elapsed').textContent.startsWith('elapsed')"
    )
    assert expect_text.text_content().startswith("elapsed")
    loads: list[str] = []
    page.on("load", lambda: loads.append(page.url))

    with app.app_context():
        base = {"step_key": STEP, "step_run_id": run_id}
        publish_many(
            deployment_id,
            [
                {
                    **base,
                    "kind": "node.started",
                    "node": "AMS-NODE1",
                    "node_action_id": action_ids[0],
                    "payload": {"script": "probe", "phase": "detect"},
                },
                {
                    **base,
                    "kind": "node.finished",
                    "node": "AMS-NODE1",
                    "node_action_id": action_ids[0],
                    "payload": {"status": "succeeded", "duration": 0.4},
                },
                {
                    **base,
                    "kind": "node.finished",
                    "node": "AMS-NODE2",
                    "node_action_id": action_ids[1],
                    "payload": {
                        "status": "failed",
                        "category": "unreachable",
                        "message": "No route to host",
                        "remediation": "Open TCP 5985.",
                    },
                },
            ],
        )
    page.wait_for_function(
        f"() => document.querySelector('tr[data-action=\"{action_ids[1]}\"]').textContent"
        ".includes('No route to host')"
    )
    assert not loads

    with app.app_context():
        row = db.session.get(StepRun, run_id)
        row.status, row.finished_at = "failed", utcnow()
        row.outcome = {
            "summary": "AMS-NODE2 could not be reached.",
            "failed_nodes": ["AMS-NODE2"],
            "checks": [],
        }
        db.session.get(Deployment, deployment_id).step(STEP).status = "needs_attention"
        db.session.commit()
        publish_many(
            deployment_id,
            [
                {
                    **base,
                    "kind": "step.finished",
                    "payload": {
                        "status": "needs_attention",
                        "summary": "AMS-NODE2 could not be reached.",
                    },
                },
                {
                    **base,
                    "kind": "step.paused",
                    "payload": {"reason": "AMS-NODE2 could not be reached."},
                },
            ],
        )
    page.wait_for_selector(".decide", timeout=15_000)
    page.wait_for_function("() => window.amswLive && window.amswLive.ready")
    page.wait_for_timeout(2000)
    assert len(loads) == 1
    assert "AMS-NODE2 could not be reached." in page.locator(".outcome").inner_text()
    assert page.locator('[data-step-state="prerequisites"]').text_content() == "needs attention"
    assert page.locator("h1 [data-title-state]").text_content() == "needs attention"
    assert page.locator(".elapsed").text_content().startswith("took")


def test_a_disabled_account_sees_that_its_session_ended(app, signed_in, deployment_id, shot):
    """The stream ends at its next keep-alive; the page says why and stops reconnecting."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models import User
    from tests.browser.conftest import USERNAME

    page = signed_in
    app.config["SSE_KEEPALIVE_SECONDS"] = 0.5
    try:
        _open_step(page, deployment_id)
        with app.app_context():
            db.session.scalar(select(User).where(User.username == USERNAME)).active = False
            db.session.commit()
        notice = page.locator("[data-signed-out]")
        notice.wait_for(timeout=15_000)
        assert "session has ended" in notice.inner_text()
        assert page.locator("[data-conn]").inner_text() == "signed out"
        assert "/login" in notice.get_by_role("link", name="Sign in again").get_attribute("href")
        shot(page, "step-signed-out", full_page=False)
    finally:
        app.config["SSE_KEEPALIVE_SECONDS"] = 15
        with app.app_context():
            db.session.scalar(select(User).where(User.username == USERNAME)).active = True
            db.session.commit()


def test_a_reload_that_still_shows_the_attempt_running_is_retried_then_given_up(
    app, signed_in, deployment_id
):
    """step.finished for the attempt on screen, but the page (re)renders it running: the page
    reloads again, further apart, three times at most, then stays put (no loop)."""
    page = signed_in
    run_id, _ = _running_attempt(app, deployment_id)  # never ended: every render shows it running
    _open_step(page, deployment_id)
    loads: list[float] = []
    page.on("load", lambda: loads.append(time.monotonic()))
    with app.app_context():
        publish(
            deployment_id, "step.finished", {"status": "done"}, step_key=STEP, step_run_id=run_id
        )
    page.wait_for_timeout(8000)  # 0.3 + 1 + 3 s of delays, page loads, then quiet
    assert len(loads) == 3, loads
    gaps = [later - earlier for earlier, later in itertools.pairwise(loads)]
    assert gaps[1] > gaps[0]  # backing off
