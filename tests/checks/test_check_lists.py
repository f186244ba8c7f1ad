"""Issue 21, item 6: in every check list failures and warnings come first, the passes fold into
a "N passed" disclosure (a <details>, no script), and "Next step" sits under the outcome."""

import re
from types import SimpleNamespace

from flask import render_template

from app.formatting import duration


def _check(key, status):
    return {
        "key": key,
        "title": f"Check {key}",
        "status": status,
        "evidence": f"saw {key}",
        "remediation": "",
        "node": None,
        "fix": None,
    }


CHECKS = [
    _check("a", "pass"),
    _check("b", "warn"),
    _check("c", "pass"),
    _check("d", "fail"),
    _check("e", "info"),
    _check("f", "pass"),
    _check("g", "fail"),
]


def _outcome(app, record_status="done", checks=CHECKS, after=True):
    run = {"outcome": {"summary": "Summary.", "checks": checks, "artifacts": {}}}
    with app.test_request_context():
        return render_template(
            "wizard/_outcome.html",
            run=run,
            deployment=SimpleNamespace(id=7),
            record=SimpleNamespace(status=record_status),
            after=SimpleNamespace(key="quorum", title="Quorum witness") if after else None,
        )


def _titles(html: str) -> list[str]:
    return re.findall(r"<td>Check (\w)</td>", html)


def test_failures_then_warnings_then_notes_then_the_folded_passes(app):
    html = _outcome(app)
    attention, passed = html.split('<details class="passed-checks">')
    assert _titles(attention) == ["d", "g", "b", "e"]  # fails, warnings, notes; order kept
    assert "<summary>3 passed</summary>" in passed
    assert _titles(passed) == ["a", "c", "f"]
    assert "<script" not in html and "style=" not in html  # CSP: no inline script or style


def test_all_passed_shows_only_the_disclosure(app):
    html = _outcome(app, checks=[_check("a", "pass"), _check("b", "pass")])
    assert 'data-checks="attention"' not in html
    assert "<summary>2 passed</summary>" in html


def test_next_step_sits_right_under_the_outcome_summary_once_done(app):
    html = _outcome(app)
    summary = html.index("Summary.")
    button = html.index("Next step: Quorum witness")
    first_check = html.index("<table")
    assert summary < button < first_check
    assert 'class="button primary"' in html and "/deployments/7/steps/quorum" in html
    assert "Next step" not in _outcome(app, record_status="needs_attention")
    assert "Next step" not in _outcome(app, after=False)


def test_a_field_fix_links_back_to_the_form(app):
    check = _check("x", "fail") | {
        "fix": {"kind": "field", "field": "cluster_address", "label": "Cluster static IP address"}
    }
    html = _outcome(app, checks=[check])
    assert (
        '<a class="field-link" href="#cluster_address">Change Cluster static IP address</a>' in html
    )


def test_history_record_lists_failures_first_and_folds_passes(app):
    step = SimpleNamespace(
        number=1,
        key="prerequisites",
        title="Prerequisites",
        status="needs_attention",
        attempts=[
            {
                "attempt": 1,
                "kind": "run",
                "status": "failed",
                "actor": "alice",
                "started_at": None,
                "seconds": 3.9000000000000012,
                "actions": [],
                "outcome": {"summary": "x", "checks": CHECKS, "artifacts": {}},
            }
        ],
        retries=0,
        seconds=3.9000000000000012,
        skip_reason=None,
    )
    with app.test_request_context():
        html = render_template(
            "history/_record.html", steps=[step], reports=[], events=[], printable=False
        )
        printable = render_template(
            "history/_record.html", steps=[step], reports=[], events=[], printable=True
        )
    section = html[html.index("Checks and evidence") :]
    attention, passed = section.split('<details class="passed-checks">')
    assert re.findall(r"<td>Check (\w)</td>", attention) == ["d", "g", "b", "e"]
    assert "<summary>3 passed</summary>" in passed
    assert '<details class="passed-checks" open>' in printable  # the printed report hides nothing
    assert "3.9 s" in html and "3.9000000000000012" not in html


# --- durations ---------------------------------------------------------------------------------


def test_durations_are_rounded_for_people():
    assert duration(3.9000000000000012) == "3.9 s"
    assert duration(0.04) == "0.0 s"
    assert duration(9.96) == "10 s"
    assert duration(42.4) == "42 s"
    assert duration(59.6) == "1 min"
    assert duration(125) == "2 min 5 s"
    assert duration(3720) == "1 h 2 min"
    assert duration(None) == duration("n/a") == duration(float("nan")) == "\u2013"


def test_the_duration_filter_is_the_one_templates_use(app):
    with app.test_request_context():
        assert app.jinja_env.filters["duration"] is duration
        assert render_template_string_safe(app, "{{ 3.9000000000000012|duration }}") == "3.9 s"


def render_template_string_safe(app, text: str) -> str:
    return app.jinja_env.from_string(text).render()


def test_failover_evidence_reads_a_rounded_move_time_not_a_health_check_time():
    from app.guides.cluster.failover_test import _row_check
    from tests.guides.cluster_views import make_view

    row = {
        "node": "AMS2",
        "owner": "AMS2",
        "owner_ok": True,
        "state": "Online",
        "service_running": True,
        "health_status": 200,
        "seconds": 0.30000000000000004,
        "error": None,
        "passed": True,
    }
    check = _row_check(make_view("failover_test"), row)
    assert "after a move of 0.3 s" in check.evidence
    assert "0.30000000000000004" not in check.evidence
