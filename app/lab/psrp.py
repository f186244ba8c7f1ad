"""PSRP host: one psrpcore ServerRunspacePool per WSMan shell, pipelines run in worker threads."""

import base64
import collections
import contextlib
import dataclasses
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import psrpcore
from psrpcore.types import (
    ErrorCategory,
    ErrorCategoryInfo,
    ErrorRecord,
    InformationRecordMsg,
    NETException,
    ProgressRecordMsg,
    ProgressRecordType,
    PSInvocationState,
    PSRPMessageType,
    PSVersion,
    VerboseRecord,
    WarningRecord,
)

from app.lab import wsman

log = logging.getLogger(__name__)

FRAGMENT_BYTES = 96 * 1024  # base64 of one fragment stays under pypsrp's initial 150 KiB envelope
STOP_GRACE_SECONDS = 2.0
_END = object()


class PipelineStopped(Exception):
    """Raised inside a handler when the client asked the pipeline to stop."""


class ConnectionDropped(Exception):
    """The node went away (simulated reboot): close the HTTP connection without answering."""


@dataclasses.dataclass(frozen=True)
class Session:
    """Who opened a shell, over which auth method, on which node."""

    node: str
    auth: str
    username: str


Runner = Callable[["PipelineIO", object, Session], None]


class LabRunspacePool(psrpcore.ServerRunspacePool):
    """psrpcore's server pool, tolerant of pypsrp spelling the call id `CI`."""

    def _process_SetMaxRunspaces(self, event) -> None:
        _fix_ci(event)
        super()._process_SetMaxRunspaces(event)

    def _process_SetMinRunspaces(self, event) -> None:
        _fix_ci(event)
        super()._process_SetMinRunspaces(event)

    def _process_GetAvailableRunspaces(self, event) -> None:
        _fix_ci(event)
        super()._process_GetAvailableRunspaces(event)

    def _process_ResetRunspaceState(self, event) -> None:
        _fix_ci(event)
        super()._process_ResetRunspaceState(event)


def _fix_ci(event) -> None:
    obj = event._ps_object
    if getattr(obj, "ci", None) is None and getattr(obj, "CI", None) is not None:
        obj.ci = obj.CI


def _private_data() -> dict:
    return {
        "PSVersionTable": {
            "PSVersion": PSVersion("5.1.17763.1"),
            "PSEdition": "Desktop",
            "BuildVersion": PSVersion("10.0.17763.1"),
            "CLRVersion": PSVersion("4.0.30319.42000"),
            "WSManStackVersion": PSVersion("3.0"),
        }
    }


class Shell:
    """A runspace pool plus its outgoing data, routed per pipeline id."""

    def __init__(
        self, shell_id: str, session: Session, runner: Runner, idle_timeout: float = 7200.0
    ) -> None:
        self.shell_id = shell_id
        self.session = session
        self.runner = runner
        self.pool = LabRunspacePool(application_private_data=_private_data())
        self.cond = threading.Condition(threading.RLock())
        self.outbox: dict = collections.defaultdict(collections.deque)
        self.runs: dict[uuid.UUID, PipelineIO] = {}
        self.dead = False
        self.idle_timeout = idle_timeout  # seconds (WinRS IdleTimeout)
        self.last_active = time.monotonic()
        self.created = time.time()  # wall clock: a restart scheduled for later ends it (rule
        # restart_ends_shells)
        self._busy = 0  # requests on this shell being served right now

    @contextlib.contextmanager
    def activity(self):
        """One client request on the shell: it is not idle while a request (a waiting Receive
        included) is being served, and its idle clock restarts when the request ends."""
        with self.cond:
            self._busy += 1
            self.last_active = time.monotonic()
        try:
            yield self
        finally:
            with self.cond:
                self._busy -= 1
                self.last_active = time.monotonic()

    def idle_expired(self, now: float | None = None) -> bool:
        """Idle (no request in progress) for longer than its IdleTimeout."""
        now = time.monotonic() if now is None else now
        with self.cond:
            return not self._busy and now - self.last_active > self.idle_timeout

    def expire(self) -> None:
        """WinRM deleted the shell for idleness: its pipelines stop and it is gone."""
        self.close()
        with self.cond:
            self.dead = True
            self.cond.notify_all()

    def feed(self, data: bytes, pipeline_id: uuid.UUID | None = None) -> None:
        """Hand client PSRP fragments to psrpcore and act on the resulting events."""
        with self.cond:
            self._check_alive()
            self.pool.receive_data(psrpcore.PSRPPayload(data, psrpcore.StreamType.default, None))
            while (event := self.pool.next_event()) is not None:
                self._on_event(event)
            self.drain()

    def command(self, command_id: str, data: bytes) -> None:
        """A WSMan Command: register the pipeline, then feed its CREATE_PIPELINE fragment."""
        pipeline_id = uuid.UUID(command_id)
        with self.cond:
            self._check_alive()
            psrpcore.ServerPipeline(self.pool, pipeline_id)
            self.runs[pipeline_id] = PipelineIO(self, pipeline_id)
        self.feed(data, pipeline_id)

    def receive(self, pipeline_id, budget: int, timeout: float) -> tuple[list[bytes], bool]:
        """Wait for output for one target; raise the OperationTimeout fault when none comes."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                self._check_alive()
                box = self.outbox.get(pipeline_id)
                if box:
                    return self._take(box, budget), self._finished(pipeline_id, box)
                if self._finished(pipeline_id, box):
                    return [], True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise wsman.timeout_fault()
                self.cond.wait(remaining)

    def signal(self, pipeline_id: uuid.UUID | None, code: str) -> None:
        """ctrl_c asks a pipeline to stop; Terminate forgets it."""
        run = self.runs.get(pipeline_id) if pipeline_id else None
        if run is None:
            return
        if code.endswith("ctrl_c"):
            run.request_stop(wait=True)
            return
        run.request_stop(wait=False)
        with self.cond:
            self.runs.pop(pipeline_id, None)
            self.outbox.pop(pipeline_id, None)
            self.pool.pipeline_table.pop(pipeline_id, None)

    def close(self) -> None:
        """Delete: stop every pipeline and drop the pool (psrpcore's close() refuses live ones)."""
        for run in list(self.runs.values()):
            run.request_stop(wait=False)
        with self.cond:
            self.runs.clear()
            self.outbox.clear()
            self.pool.pipeline_table.clear()

    def kill(self) -> None:
        """The node "rebooted": wake every waiter so its connection is dropped."""
        with self.cond:
            self.dead = True
            self.cond.notify_all()
        for run in list(self.runs.values()):
            run.request_stop(wait=False)

    def drain(self) -> None:
        """Move psrpcore's single send buffer into per-target queues of whole fragments."""
        with self.cond:
            while (payload := self.pool.data_to_send(FRAGMENT_BYTES)) is not None:
                self.outbox[payload.pipeline_id].append(payload.data)
            self.cond.notify_all()

    def _check_alive(self) -> None:
        if self.dead:
            raise ConnectionDropped()

    def _finished(self, pipeline_id, box) -> bool:
        run = self.runs.get(pipeline_id) if pipeline_id else None
        return run is not None and run.finished and not box

    @staticmethod
    def _take(box: collections.deque, budget: int) -> list[bytes]:
        chunks, used = [box.popleft()], 0
        used = _encoded_size(chunks[0])
        while box and used + _encoded_size(box[0]) <= budget:
            used += _encoded_size(box[0])
            chunks.append(box.popleft())
        return chunks

    def _on_event(self, event) -> None:
        if isinstance(event, psrpcore.CreatePipelineEvent):
            self.runs[event.pipeline_id].start(event.pipeline)
        elif isinstance(event, psrpcore.PipelineInputEvent):
            self.runs[event.pipeline_id].inputs.put(event.data)
        elif isinstance(event, psrpcore.EndOfPipelineInputEvent):
            self.runs[event.pipeline_id].inputs.put(_END)
        elif isinstance(event, psrpcore.GetAvailableRunspacesEvent):
            self.pool.runspace_availability_response(event.ci, 1)
        elif isinstance(
            event,
            psrpcore.SetMaxRunspacesEvent
            | psrpcore.SetMinRunspacesEvent
            | psrpcore.ResetRunspaceStateEvent,
        ):
            self.pool.runspace_availability_response(event.ci, True)


def _encoded_size(chunk: bytes) -> int:
    return (len(chunk) + 2) // 3 * 4 + 80


class PipelineIO:
    """A running pipeline as seen by the dispatcher: its streams, its input and its stop flag."""

    def __init__(self, shell: Shell, pipeline_id: uuid.UUID) -> None:
        self.shell = shell
        self.pipeline_id = pipeline_id
        self.inputs: queue.Queue = queue.Queue()
        self.stop_event = threading.Event()
        self.finished = False
        self.done_event = threading.Event()

    @property
    def pipeline(self) -> psrpcore.ServerPipeline:
        """psrpcore's pipeline object."""
        return self.shell.pool.pipeline_table[self.pipeline_id]

    def start(self, metadata) -> None:
        """Mark the pipeline running and start its worker thread."""
        self.pipeline.start()
        name = f"lab-pipeline-{self.pipeline_id}"
        threading.Thread(target=self._work, args=(metadata,), name=name, daemon=True).start()

    def request_stop(self, wait: bool) -> None:
        """Ask the handler to stop; optionally wait briefly until it has."""
        self.stop_event.set()
        self.inputs.put(_END)
        if wait:
            self.done_event.wait(STOP_GRACE_SECONDS)

    def read_input(self) -> Iterator:
        """Yield pipeline input objects until the client ends the input."""
        while True:
            item = self.inputs.get()
            if self.stop_event.is_set():
                raise PipelineStopped()
            if item is _END:
                return
            yield item

    def output(self, value) -> None:
        """Write one object to the output stream."""
        self._emit(lambda p: p.write_output(value))

    def error(self, message: str, error_id: str = "LabError", category=None) -> None:
        """Write a non-terminating error record."""
        record = _error_record(message, error_id, category or ErrorCategory.NotSpecified)
        self._emit(lambda p: p.prepare_message(record, PSRPMessageType.ErrorRecord))

    def warning(self, message: str) -> None:
        """Write a warning record whose display text is the message."""
        self._record(WarningRecord, PSRPMessageType.WarningRecord, message)

    def verbose(self, message: str) -> None:
        """Write a verbose record whose display text is the message."""
        self._record(VerboseRecord, PSRPMessageType.VerboseRecord, message)

    def information(self, message: str, source: str = "lab") -> None:
        """Write an information record (Write-Information / Write-Host)."""
        self._emit(lambda p: p.prepare_message(_information(message, source)))

    def progress(self, activity: str, status: str, percent: int = -1) -> None:
        """Write a progress record."""
        record = ProgressRecordMsg(
            Activity=activity,
            ActivityId=0,
            StatusDescription=status,
            CurrentOperation=None,
            ParentActivityId=-1,
            PercentComplete=int(percent),
            Type=ProgressRecordType.Processing,
            SecondsRemaining=-1,
        )
        self._emit(lambda p: p.prepare_message(record, PSRPMessageType.ProgressRecord))

    def complete(self) -> None:
        """End the pipeline in state Completed."""
        self._finish(lambda p: p.complete())

    def fail(self, message: str, error_id: str = "LabScriptFailed") -> None:
        """End the pipeline in state Failed (pypsrp then sets had_errors)."""
        record = _error_record(message, error_id, ErrorCategory.OperationStopped)
        self._finish(lambda p: p._change_state(PSInvocationState.Failed, record))

    def stopped(self) -> None:
        """End the pipeline in state Stopped."""
        self._finish(lambda p: p.stop())

    def abandon(self) -> None:
        """Finish without telling the client (its connection is about to be dropped)."""
        self.finished = True
        self.done_event.set()

    def _record(self, cls, message_type, message: str) -> None:
        record = cls(Message=message, InvocationInfo=None, PipelineIterationInfo=None)
        record.serialize_extended_info = False
        record.PSObject.to_string = message
        self._emit(lambda p: p.prepare_message(record, message_type))

    def _emit(self, action) -> None:
        with self.shell.cond:
            if self.finished or self.pipeline_id not in self.shell.pool.pipeline_table:
                return
            action(self.pipeline)
            self.shell.drain()

    def _finish(self, action) -> None:
        with self.shell.cond:
            if not self.finished and self.pipeline_id in self.shell.pool.pipeline_table:
                action(self.pipeline)
            self.finished = True
            self.shell.drain()
        self.done_event.set()

    def _work(self, metadata) -> None:
        try:
            self.shell.runner(self, metadata, self.shell.session)
        except PipelineStopped:
            self.stopped()
        except Exception as exc:  # a handler bug must still end the pipeline for the client
            log.exception("lab pipeline %s crashed", self.pipeline_id)
            self.fail(f"The lab handler crashed: {exc}")
        else:
            self.complete()


def _error_record(message: str, error_id: str, category: ErrorCategory) -> ErrorRecord:
    exception = NETException(Message=message)
    info = ErrorCategoryInfo(Category=category, Reason="RuntimeException")
    record = ErrorRecord(Exception=exception, CategoryInfo=info, FullyQualifiedErrorId=error_id)
    record.PSObject.to_string = message
    return record


def _information(message: str, source: str) -> InformationRecordMsg:
    record = psrpcore.types.InformationRecord.create(
        message_data=message, source=source, user="lab", computer="lab"
    )
    msg = InformationRecordMsg(
        MessageData=record.MessageData,
        Source=record.Source,
        TimeGenerated=record.TimeGenerated,
        Tags=record.Tags,
        User=record.User,
        Computer=record.Computer,
        ProcessId=record.ProcessId,
        NativeThreadId=record.NativeThreadId,
        ManagedThreadId=record.ManagedThreadId,
    )
    msg.PSObject.to_string = message
    return msg


def decode_arguments(text: str | None) -> bytes:
    """Base64 text of a WSMan Arguments/Stream element."""
    return base64.b64decode(text or "")
