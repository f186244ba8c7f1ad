"""A ScriptContext stand-in for calling lab handlers directly, without the protocol server."""

import contextlib
import copy
import json
import threading

from app.lab.context import ScriptContext
from app.remote import scripts
from app.steps import Action, ActionResult


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


class RecordingIO:
    """The PipelineIO calls a ScriptContext makes, recorded in order."""

    def __init__(self) -> None:
        self.records: list[tuple[str, object]] = []
        self.stop_event = threading.Event()

    def output(self, value):
        self.records.append(("output", value))

    def error(self, message):
        self.records.append(("error", message))

    def warning(self, message):
        self.records.append(("warning", message))

    def verbose(self, message):
        self.records.append(("verbose", message))

    def information(self, message, source=""):
        self.records.append(("information", message))

    def progress(self, activity, status, percent=-1):
        self.records.append(("progress", (activity, status, percent)))

    def read_input(self):
        return iter(())


class FakeCtx(ScriptContext):
    """The real ScriptContext (second hop, processes) over recorded streams; sleep returns at once."""

    def __init__(
        self,
        store,
        node,
        params=None,
        auth="negotiate",
        username="CORP\\operator",
        script="",
        reaches=None,
    ):
        io = RecordingIO()
        super().__init__(
            io,
            script=script,
            node=node,
            params=dict(params or {}),
            args=[],
            store=store,
            auth=auth,
            username=username,
            reaches=_reaches(script) if reaches is None else reaches,
        )
        self.records = io.records
        self.text = scripts.load(script) if script else ""
        self.shell_id = "FAKE-SHELL"
        self.dispatcher = _dispatcher(store)

    def sleep(self, seconds):
        self.records.append(("sleep", seconds))

    def spend(self, seconds, activity, status):
        self.records.append(("sleep", seconds))


def _reaches(script: str) -> tuple[str, ...]:
    """What the script declares it reaches. A handler called directly by a unit test has no
    script name: it may consult any resource (the second hop itself is still enforced); the
    declaration is checked wherever the script is known (run_action, the dispatcher)."""
    from app.lab.context import SECOND_HOP_ERRORS
    from app.lab.handlers import REACHES

    return REACHES.get(script, ()) if script else tuple(SECOND_HOP_ERRORS)


def _dispatcher(store):
    from app.lab.dispatch import Dispatcher, ScriptCatalog

    global _CATALOG
    if _CATALOG is None:
        _CATALOG = ScriptCatalog()
    return Dispatcher(store, _CATALOG, check_password=lambda user, password: bool(password))


_CATALOG = None


def run_action(store: FakeStore, action: Action, auth: str = "negotiate") -> ActionResult:
    """Run one Action through its lab handler and wrap the outcome as the runner would."""
    from app.lab.context import ScriptFailure
    from app.lab.dispatch import check_reaches
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
    params = scripts.expand_parameters(action.script, dict(action.params))
    params.update({k: f"<{v}>" for k, v in action.secrets.items()})  # the vault's values
    ctx = FakeCtx(store, action.node, params, auth=auth, script=action.script)
    try:
        data = handlers[action.script](ctx)
        check_reaches(ctx)  # as the dispatcher does: a plain run must consult what it reaches
    except ScriptFailure as exc:
        return ActionResult(action.node, action.script, "failed", None, "script_error", str(exc))
    if data is None:  # task_run re-emits the inner script's JSON output
        outputs = [v for kind, v in ctx.records if kind == "output"]
        data = json.loads(outputs[-1]) if outputs else None
    return ActionResult(action.node, action.script, "succeeded", json.loads(json.dumps(data)))
