"""Where follow-up work goes: Celery in production, whatever a test sets in app.extensions otherwise."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from flask import current_app

from app.execution import outbox


class Enqueue(Protocol):
    """Where follow-up work goes (Celery in production, a list or direct calls in tests)."""

    def advance(self, run_id: int, countdown: float = 0) -> None: ...

    def action(self, action_id: int, countdown: float = 0) -> None: ...


class ProbeEnqueue(Protocol):
    """Where a Test connection goes (app.execution.probe)."""

    def probe(self, deployment_id: int, node_id: int) -> None: ...


@runtime_checkable
class Keeper(Enqueue, Protocol):
    """A worker's Enqueue that keeps the first action of a phase it starts and runs it itself
    (app.execution.worker.execute.KeepFirst): the action is inserted claimed, in the phase's transaction."""

    @property
    def accepting(self) -> bool:
        """Whether it would keep an action now (not while its worker is shutting down)."""
        ...

    def keep(self, action: Any, run: Any, node: Any) -> dict:
        """Note the claimed action (flushed, not committed); returns its node.started event item."""
        ...

    def committed(self) -> None:
        """The phase's transaction committed: the kept action may run."""
        ...


class CeleryEnqueue:
    """Send ids (never secrets) to the Celery tasks, through this Flask app's own Celery app."""

    ADVANCE = "app.execution.tasks.advance_step_run"
    ACTION = "app.execution.tasks.run_node_action"
    PROBE = "app.execution.tasks.test_connection"

    def _send(self, name: str, arg: int, countdown: float) -> None:
        outbox.send(name, (arg,), countdown)

    def advance(self, run_id: int, countdown: float = 0) -> None:
        self._send(self.ADVANCE, run_id, countdown)

    def action(self, action_id: int, countdown: float = 0) -> None:
        self._send(self.ACTION, action_id, countdown)

    def probe(self, deployment_id: int, node_id: int) -> None:
        outbox.send(self.PROBE, (deployment_id, node_id))


def default_enqueue() -> Enqueue:
    """The app's dispatcher: app.extensions['amsw_enqueue'] if a test set one, else Celery."""
    return current_app.extensions.get("amsw_enqueue") or CeleryEnqueue()
