"""A ScriptContext stand-in for calling lab handlers directly, without the protocol server."""

import contextlib
import copy
import json

from app.wizard.engine import Action, ActionResult


class FakeStore:
    """The two LabStore calls handlers use, over an in-memory dict."""

    def __init__(self, state: dict) -> None:
        self.state = state

    def read(self) -> dict:
        return copy.deepcopy(self.state)

    def peek(self, *keys, default=None):
        value = self.state
        for key in keys:
            if not isinstance(value, dict) or key not in value:
                return default
            value = value[key]
        return copy.deepcopy(value)

    @contextlib.contextmanager
    def transaction(self):
        working = copy.deepcopy(self.state)
        yield working
        self.state = working


class FakeCtx:
    """Records every stream write; sleep returns at once."""

    def __init__(self, store, node, params=None, auth="negotiate", username="CORP\\operator"):
        self.store = store
        self.node = node
        self.params = dict(params or {})
        self.args = []
        self.auth = auth
        self.username = username
        self.script = ""
        self.records: list[tuple[str, object]] = []

    def _record(self, kind, value):
        self.records.append((kind, value))

    def output(self, value):
        self._record("output", value)

    def error(self, message):
        self._record("error", message)

    def warning(self, message):
        self._record("warning", message)

    def verbose(self, message):
        self._record("verbose", message)

    def information(self, message):
        self._record("information", message)

    def progress(self, activity, status, percent=-1):
        self._record("progress", (activity, status, percent))

    def sleep(self, seconds):
        self._record("sleep", seconds)

    def spend(self, seconds, activity, status):
        self._record("sleep", seconds)


def run_action(store: FakeStore, action: Action, auth: str = "negotiate") -> ActionResult:
    """Run one Action through its lab handler and wrap the outcome as the runner would."""
    from app.lab.context import ScriptFailure
    from app.lab.handlers import load_handlers

    handlers = load_handlers()
    faults = store.state.get("faults", {})
    if action.node in faults.get("unreachable", []):
        return ActionResult(
            action.node,
            action.script,
            "failed",
            None,
            "unreachable",
            "Cannot reach the node: connection refused",
        )
    if action.node in faults.get("auth_failure", []):
        return ActionResult(
            action.node,
            action.script,
            "failed",
            None,
            "auth_failed",
            "Authentication failed (HTTP 401)",
        )
    ctx = FakeCtx(store, action.node, action.params, auth=auth)
    try:
        data = handlers[action.script](ctx)
    except ScriptFailure as exc:
        return ActionResult(action.node, action.script, "failed", None, "script_error", str(exc))
    return ActionResult(action.node, action.script, "succeeded", json.loads(json.dumps(data)))
