"""What a lab handler sees while it models one vetted script on one node."""

import json
import time
from collections.abc import Iterator

from app.lab.psrp import PipelineIO, PipelineStopped
from app.lab.store import LabStore

__all__ = ["PipelineStopped", "ScriptContext", "ScriptFailure"]


class ScriptFailure(Exception):
    """Raise from a handler to end the pipeline in state Failed with this message."""


class ScriptContext:
    """The handler's view: node, parameters, state store, session, and the PowerShell streams.

    A handler is `func(ctx) -> value | None`; a non-None value is written as one JSON string.
    """

    def __init__(
        self,
        io: PipelineIO,
        *,
        script: str,
        node: str,
        params: dict,
        args: list,
        store: LabStore,
        auth: str,
        username: str,
        as_text: bool = False,
    ) -> None:
        self.io = io
        self.script = script
        self.node = node
        self.params = params
        self.args = args
        self.store = store
        self.auth = auth
        self.username = username
        self.as_text = as_text

    @property
    def stopping(self) -> bool:
        """True once the client asked the pipeline to stop."""
        return self.io.stop_event.is_set()

    def check_stop(self) -> None:
        """Raise PipelineStopped if a stop was requested."""
        if self.stopping:
            raise PipelineStopped()

    def sleep(self, seconds: float) -> None:
        """Wait, but raise PipelineStopped promptly when the client stops the pipeline."""
        if self.io.stop_event.wait(max(0.0, seconds)):
            raise PipelineStopped()

    def output(self, value) -> None:
        """Write one object to the output stream."""
        self.check_stop()
        if self.as_text and not isinstance(value, str):
            value = json.dumps(value)
        self.io.output(value)

    def error(self, message: str) -> None:
        """Write a non-terminating error record (the pipeline can still complete)."""
        self.io.error(message)

    def warning(self, message: str) -> None:
        """Write-Warning."""
        self.io.warning(message)

    def verbose(self, message: str) -> None:
        """Write-Verbose."""
        self.io.verbose(message)

    def information(self, message: str) -> None:
        """Write-Information."""
        self.io.information(message, source=self.script)

    def progress(self, activity: str, status: str, percent: int = -1) -> None:
        """Write-Progress."""
        self.check_stop()
        self.io.progress(activity, status, percent)

    def input(self) -> Iterator:
        """Pipeline input objects sent by the client, until it ends the input."""
        return self.io.read_input()

    def spend(self, seconds: float, activity: str, status: str) -> None:
        """Spend `seconds` emitting progress about twice a second, honouring stop."""
        start = time.monotonic()
        while (elapsed := time.monotonic() - start) < seconds:
            self.progress(activity, status, int(100 * elapsed / seconds))
            self.sleep(min(0.5, seconds - elapsed))
