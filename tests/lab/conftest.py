"""Fixtures: an in-process LabServer with test-only vetted scripts and their handlers."""

import threading
from pathlib import Path

import pytest
from pypsrp.wsman import WSMan

from app.lab.handlers import HANDLERS, load_handlers
from app.lab.server import LabServer
from app.lab.store import LabStore

SCRIPTS = Path(__file__).parent / "scripts"
USER = "labadmin"
PASSWORD = "Lab-Passw0rd!"
NODES = ["node1", "node2"]


def script_text(name: str) -> str:
    """The exact text of a test vetted script."""
    return (SCRIPTS / f"{name}.ps1").read_text(encoding="utf-8")


def minimal_state(nodes: list[str]) -> dict:
    """The smallest state the protocol half needs: nodes with a file store, no faults."""
    return {"nodes": {n: {"files": {}, "pending_reboot": False} for n in nodes}, "faults": {}}


class Probe:
    """What test handlers observed, so tests can assert on the server side too."""

    def __init__(self) -> None:
        self.stopped = threading.Event()
        self.started = threading.Event()
        self.calls: list[dict] = []


def _echo(ctx):
    ctx.progress("echo", "working", 50)
    greeting = f"Hello {ctx.params['Name']}" * int(ctx.params.get("Count", 1))
    if ctx.params.get("Shout"):
        greeting = greeting.upper()
    return {"greeting": greeting, "count": ctx.params.get("Count", 1), "auth": ctx.auth}


def _streams(ctx):
    message = ctx.params.get("Message", "lab")
    ctx.verbose(f"verbose: {message}")
    ctx.warning(f"warning: {message}")
    ctx.information(f"information: {message}")
    ctx.progress("Streams", f"progress: {message}", 40)
    ctx.error(f"error: {message}")
    return {"done": True}


def _fail(ctx):
    from app.lab.context import ScriptFailure

    raise ScriptFailure(f"lab_fail: {ctx.params.get('Reason', 'broken on purpose')}")


def _state(ctx):
    with ctx.store.transaction() as state:
        state["nodes"][ctx.node].setdefault("values", {})[ctx.params["Key"]] = ctx.params["Value"]
    return {"key": ctx.params["Key"], "value": ctx.params["Value"]}


def _make_slow(probe: Probe):
    def slow(ctx):
        probe.started.set()
        try:
            seconds = float(ctx.params.get("Seconds", 2))
            if ctx.params.get("Quiet"):
                ctx.sleep(seconds)
            else:
                ctx.spend(seconds, "Slow", "waiting")
        except BaseException:
            probe.stopped.set()
            raise
        return {"slept": ctx.params.get("Seconds", 2)}

    return slow


@pytest.fixture
def probe():
    """Server-side observations of the test handlers."""
    return Probe()


@pytest.fixture(autouse=True)
def test_handlers(probe):
    """Register the test scripts' handlers for one test, then restore the registry."""
    saved = dict(load_handlers())  # every module imported first, so none is lost on restore
    HANDLERS.update(
        {
            "lab_echo": _echo,
            "lab_streams": _streams,
            "lab_fail": _fail,
            "lab_state": _state,
            "lab_slow": _make_slow(probe),
        }
    )
    yield HANDLERS
    HANDLERS.clear()
    HANDLERS.update(saved)


@pytest.fixture
def store(tmp_path):
    """A LabStore in a temp folder, seeded with two nodes."""
    lab_store = LabStore(tmp_path / "lab" / "state.json")
    lab_store.replace(minimal_state(NODES))
    return lab_store


@pytest.fixture
def lab(store):
    """A running LabServer over plain HTTP on free ports."""
    server = LabServer(store, NODES, 0, USER, PASSWORD, extra_scripts_dirs=[SCRIPTS]).start()
    yield server
    server.stop()


@pytest.fixture
def connect(lab):
    """Build a pypsrp WSMan for a node: `connect("node1", auth="ntlm")`."""
    made = []

    def factory(node="node1", auth="basic", password=PASSWORD, **kwargs):
        kwargs.setdefault("encryption", "never" if auth == "basic" else "auto")
        wsman = WSMan(
            "127.0.0.1",
            port=lab.ports[node],
            username=USER,
            password=password,
            ssl=False,
            auth=auth,
            connection_timeout=5,
            **kwargs,
        )
        made.append(wsman)
        return wsman

    yield factory
    for wsman in made:
        wsman.close()
