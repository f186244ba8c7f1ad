"""Lab-side handlers for the test-only scripts and helpers to run the lab and seed deployments."""

import threading
from pathlib import Path

from app.lab.context import PipelineStopped, ScriptFailure
from app.lab.handlers import HANDLERS
from app.lab.server import LabServer
from app.lab.store import LabStore

SCRIPTS = Path(__file__).parent / "scripts"
MARKER = "applied"


class Observed:
    """What the lab saw: stops, applies (per node) and starts, for assertions across processes."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started = threading.Event()
        self.applying = 0  # exec_apply handlers running now
        self.stopped = threading.Event()
        self.applies: dict[str, int] = {}
        self.stops: dict[str, int] = {}
        self.secrets_seen: list[str] = []


def handlers(observed: Observed) -> dict:
    """Handlers for tests/execution/scripts, recording into `observed` and the lab store."""

    def detect(ctx):
        node = ctx.store.peek("nodes", ctx.node, default={}) or {}
        return {"applied": bool(node.get(MARKER))}

    def apply(ctx):
        with observed.lock:
            observed.applying += 1
        try:
            return applying(ctx)
        finally:
            with observed.lock:
                observed.applying -= 1

    def applying(ctx):
        observed.started.set()
        secret = ctx.params.get("Secret")
        if secret:
            with observed.lock:
                observed.secrets_seen.append(secret)
        ctx.information(f"applying on {ctx.node}")
        if ctx.params.get("EchoSecret"):
            ctx.information(f"echo: {secret}")
        try:
            ctx.spend(float(ctx.params.get("Seconds", 0)), "Apply", "working")
        except PipelineStopped:
            with observed.lock:
                observed.stops[ctx.node] = observed.stops.get(ctx.node, 0) + 1
            observed.stopped.set()
            raise
        with ctx.store.transaction() as state:
            node = state["nodes"].setdefault(ctx.node, {})
            node[MARKER] = True
            node["apply_count"] = node.get("apply_count", 0) + 1
        with observed.lock:
            observed.applies[ctx.node] = observed.applies.get(ctx.node, 0) + 1
        return {"applied": True}

    def echo(ctx):
        return {"text": ctx.params.get("Text", "")}

    def wait(ctx):
        ctx.sleep(float(ctx.params.get("Seconds", 1)))
        return {"waited": ctx.params.get("Seconds", 1)}

    def fail(ctx):
        raise ScriptFailure(f"exec_fail: {ctx.params.get('Reason', 'broken on purpose')}")

    def streams(ctx):
        message = ctx.params.get("Message", "lab")
        ctx.verbose(f"verbose: {message}")
        ctx.warning(f"warning: {message}")
        ctx.information(f"information: {message}")
        ctx.progress("Streams", f"progress: {message}", 40)
        ctx.error(f"error: {message}")
        return {"done": True}

    def count(ctx):
        total, seconds = int(ctx.params.get("Count", 40)), float(ctx.params.get("Seconds", 4))
        for number in range(1, total + 1):
            ctx.output(f"line {number:04d}")
            ctx.sleep(seconds / total)
        return {"lines": total}

    return {
        "exec_detect": detect,
        "exec_apply": apply,
        "exec_echo": echo,
        "exec_wait": wait,
        "exec_fail": fail,
        "exec_streams": streams,
        "exec_count": count,
    }


def start_lab(
    folder: Path, nodes: list[str], username: str, password: str, observed: Observed
) -> LabServer:
    """A running lab with the test handlers registered (the caller restores HANDLERS)."""
    HANDLERS.update(handlers(observed))
    store = LabStore(folder / "lab" / "state.json")
    store.replace(
        {"nodes": {n: {"files": {}, "pending_reboot": False} for n in nodes}, "faults": {}}
    )
    return LabServer(store, nodes, 0, username, password, extra_scripts_dirs=[SCRIPTS]).start()
