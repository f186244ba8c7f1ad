"""Registry of lab models: one handler per vetted script name (the .ps1 file stem)."""

import importlib
import time
from collections.abc import Callable

# Modules that define handlers with @handler("<script stem>"); teammates append theirs here.
HANDLER_MODULES: tuple[str, ...] = (
    "app.lab.handlers.prerequisites",
    "app.lab.handlers.cluster",
    "app.lab.handlers.quorum",
    "app.lab.handlers.ams",
    "app.lab.handlers.role",
    "app.lab.handlers.failover",
    "app.lab.handlers.tasks",
    "app.lab.handlers.farm",
)

HANDLERS: dict[str, Callable] = {}
# What each script reaches beyond its own node with the caller's identity ("ad", "sql", "nodes",
# "share"): the dispatcher holds the handler to consulting `ctx.reach` for each (rule second_hop).
REACHES: dict[str, tuple[str, ...]] = {}


def handler(name: str, reaches: tuple[str, ...] = ()) -> Callable[[Callable], Callable]:
    """Register `func(ctx)` as the lab model of the vetted script `name` (later ones replace)."""

    def register(func: Callable) -> Callable:
        HANDLERS[name] = func
        REACHES[name] = tuple(reaches)
        return func

    return register


def load_handlers(modules: tuple[str, ...] = HANDLER_MODULES) -> dict[str, Callable]:
    """Import every listed handler module (each must exist) and return the registry."""
    for module in modules:
        importlib.import_module(module)
    return HANDLERS


def elapsed(started: float) -> float:
    """Seconds since `started` (time.monotonic()), as the scripts report them: what the lab
    really took, so its evidence never claims a 6 s wait inside a step that lasted 0.1 s."""
    return round(time.monotonic() - started, 1)
