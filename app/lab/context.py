"""What a lab handler sees while it models one vetted script on one node."""

import json
import time
from collections.abc import Iterator

from app.lab.psrp import PipelineIO, PipelineStopped
from app.lab.rules import starts_outside_shell
from app.lab.store import LabStore

__all__ = ["PipelineStopped", "ScriptContext", "ScriptFailure"]


class ScriptFailure(Exception):
    """Raise from a handler to end the pipeline in state Failed with this message."""


# What Windows says when a session without delegable credentials reaches another machine
# (rule second_hop): the remote side sees ANONYMOUS LOGON.
SECOND_HOP_ERRORS = {
    "ad": (
        "Unable to contact the server. This may be because this server does not exist, it is "
        "currently down, or it does not have the Active Directory Web Services running."
    ),
    "sql": "Login failed for user 'NT AUTHORITY\\ANONYMOUS LOGON'.",
    "nodes": (
        "Access is denied. The credentials of this remote session cannot be delegated to the "
        "other nodes. (Exception from HRESULT: 0x80070005 (E_ACCESSDENIED))"
    ),
    "share": "Access to the path is denied.",
}
# Logons that hold the caller's password (or a ticket that may be forwarded) on the node.
DELEGATING_LOGONS = ("credssp", "task")


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
        reaches: tuple[str, ...] = (),
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
        self.reaches = reaches
        self.consulted: set[str] = set()
        self.dispatcher = None  # set by the dispatcher
        self.text = ""  # the vetted script text being modelled
        self.shell_id: str | None = None  # the WinRM shell running it (None inside a task)

    def start_process(self, record: dict) -> dict:
        """Record a process the script starts (rule shell_job): one started inside the shell is
        bound to it and dies when it closes; Win32_Process Create and scheduled tasks are not."""

        outside = self.shell_id is None or starts_outside_shell(self.text)
        return {**record, "shell_id": None if outside else self.shell_id, "node": self.node}

    def process_alive(self, record: dict) -> bool:
        """False once the shell a process was bound to has closed."""
        shell_id = record.get("shell_id")
        if not shell_id or self.dispatcher is None:
            return True
        return self.dispatcher.shell_alive(self.node, shell_id)

    @property
    def delegating(self) -> bool:
        """The script's logon holds credentials another machine accepts (CredSSP, a task)."""
        return self.auth in DELEGATING_LOGONS

    def can_reach(self, resource: str) -> bool:
        """Whether the caller's identity reaches `resource` ("ad", "sql", "nodes", "share")."""
        if resource not in SECOND_HOP_ERRORS:
            raise ValueError(f"unknown resource {resource!r}")
        if resource not in self.reaches:
            raise ValueError(
                f"lab model error: {self.script} does not declare it reaches {resource}"
            )
        self.consulted.add(resource)
        return self.delegating

    def reach(self, resource: str) -> None:
        """Raise Windows' error when the caller's identity cannot reach `resource`."""
        if not self.can_reach(resource):
            raise ScriptFailure(SECOND_HOP_ERRORS[resource])

    def hop_error(self, resource: str) -> str | None:
        """Windows' error text for `resource`, or None when it can be reached."""
        return None if self.can_reach(resource) else SECOND_HOP_ERRORS[resource]

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
