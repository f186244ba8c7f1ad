"""Ways a step run can go other than the step's own `advance`, registered by the packages that
define them, so that execution imports none of them.

A run's `options.mode` names its mode. A mode decides the run's next phase instead of the
step (`decide`) and records its end instead of the ordinary finish (`finish`). The hand-over
package registers the read-only re-verification of finished steps ("verify", app.handover.drift)
when the app is set up. Listeners of `paused` hear about every pause (the hand-over notices);
listeners of `ended` about every deployment whose credentials were wiped (the worker's sessions).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from app.models import Deployment, StepRun
    from app.steps import Finish, Phase, RunView, Step


class RunMode(Protocol):
    name: str

    def decide(self, step: Step, view: RunView) -> Phase | Finish: ...

    def finish(self, run: StepRun, deployment: Deployment, verdict: Finish) -> str: ...


_modes: dict[str, RunMode] = {}
_paused: list[Callable[[int, str, str], None]] = []
_ended: list[Callable[[int], None]] = []


def register(mode: RunMode) -> None:
    _modes[mode.name] = mode


def of(name: str | None) -> RunMode | None:
    """The mode a run's options name (RunOptions.mode); None for an ordinary run. An unknown mode
    is an error: a run must never fall back to the step's own (possibly state-changing) advance."""
    if not name:
        return None
    if name not in _modes:
        raise LookupError(f"No run mode '{name}' is registered (app setup registers them).")
    return _modes[name]


def on_paused(listener: Callable[[int, str, str], None]) -> None:
    """Call listener(deployment id, step key, reason) whenever a step pauses."""
    if listener not in _paused:
        _paused.append(listener)


def paused(deployment_id: int, step_key: str, reason: str) -> None:
    for listener in _paused:
        listener(deployment_id, step_key, reason)


def on_ended(listener: Callable[[int], None]) -> None:
    """Call listener(deployment id) when a deployment ends (completed) and its credentials are wiped."""
    if listener not in _ended:
        _ended.append(listener)


def ended(deployment_id: int) -> None:
    for listener in _ended:
        listener(deployment_id)
