"""Reading what Test-Cluster said: its warning messages and its "Test Result:" summary.

The script returns Test-Cluster's warnings as Windows wrote them; the verdict is decided here, where
it can be tested. Test-Cluster names each test that warned or failed as "<Category> - <Test>:
<message>" and ends with a summary such as "Test Result: HadUnselectedTests,
ClusterConditionallyApproved". The wizard runs only the Inventory, Network and System Configuration
categories (there is no shared storage), so a clean run always reports HadUnselectedTests: that is
a pass with unselected tests, never a failure.
"""

from __future__ import annotations

import re
from typing import Any

from app.steps import Check

_ISSUE = re.compile(r"^(?P<test>[^:\r\n]+ - [^:\r\n]+):\s*(?P<message>.+)$", re.S)
_RESULT = re.compile(r"Test Result:\s*(?P<tokens>[A-Za-z, ]+)")
FAILED_TOKENS = {"clusternotapproved", "hadfailures", "failed"}
OUTCOME_TEXT = {
    "passed": "passed",
    "passed_unselected": "passed with unselected tests",
    "warnings": "passed with warnings",
    "failed": "failed",
}


def result_tokens(messages: list[str]) -> list[str]:
    """The words of every "Test Result:" summary, e.g. ["HadUnselectedTests", "ClusterApproved"]."""
    tokens: list[str] = []
    for text in messages:
        for match in _RESULT.finditer(text):
            tokens += [t.strip() for t in match.group("tokens").split(",") if t.strip()]
    return tokens


def issues(messages: list[str]) -> list[dict[str, str]]:
    """One entry per test that warned or failed."""
    found = []
    for text in messages:
        if "Test Result:" in text:
            continue
        match = _ISSUE.match(text.strip())
        if match:
            message = match.group("message").strip()
            severity = "failure" if re.search(r"\bfail", message, re.I) else "warning"
            found.append(
                {"test": match.group("test").strip(), "severity": severity, "message": message}
            )
    return found


def reading(data: dict[str, Any]) -> dict[str, Any]:
    """The script's output with the verdict added: outcome, test_result and issues."""
    if "warnings" not in data:  # already read
        return data
    messages = [str(m) for m in data.get("warnings") or []]
    tokens = result_tokens(messages)
    found = issues(messages)
    lowered = {t.lower() for t in tokens}
    if lowered & FAILED_TOKENS or any(i["severity"] == "failure" for i in found):
        outcome = "failed"
    elif found or "clusterconditionallyapproved" in lowered:
        outcome = "warnings"
    elif "hadunselectedtests" in lowered:
        outcome = "passed_unselected"
    else:
        outcome = "passed"
    return {
        **{k: v for k, v in data.items() if k != "warnings"},
        "outcome": outcome,
        "outcome_text": OUTCOME_TEXT[outcome],
        "test_result": ", ".join(tokens),
        "issues": found,
    }


def outcome_check(read: dict[str, Any]) -> Check:
    """The validation verdict as one check line."""
    outcome = read.get("outcome", "passed")
    status = {"failed": "fail", "warnings": "warn"}.get(outcome, "pass")
    advice = ""
    if outcome in ("warnings", "failed"):
        advice = (
            "The lines above name each test that did not pass. Open the validation report kept "
            "with this deployment for the details, fix the cause on the nodes, then retry."
        )
    elif outcome == "passed_unselected":
        advice = (
            "Only the Inventory, Network and System Configuration tests ran (this cluster has no "
            "shared storage), so Windows reports unselected tests. That is expected."
        )
    return Check(
        "validation_outcome",
        f"Cluster validation {OUTCOME_TEXT.get(outcome, outcome)}",
        status,
        f"Test Result: {read.get('test_result') or 'not reported'}.",
        advice,
    )
