"""Run one vetted script on one node over WinRM/PSRP, streaming its records as they arrive.

Contract:
- `run_script(conn, script_name, params, on_record, timeout, cancel_event)` loads the script text from
  `app.remote.scripts` (never built from strings), passes user values only through `add_parameters`,
  starts the pipeline with `begin_invoke` and then polls with a short WSMan OperationTimeout. After each
  poll the new entries of pypsrp's `ps.output` and `ps.streams.*` are handed to `on_record(dict)` in the
  order they were received per stream, so callers see output/progress/information/warning/error live.
- The script's single JSON string output is parsed into `RunResult.data`; every output object is also
  converted to plain data in `RunResult.objects`.
- Failures raise `RemoteError` (see errors.py): unreachable/auth_failed/access_denied before or during the
  run, script_error when the pipeline fails, timeout after `timeout` seconds, cancelled when `cancel_event`
  is set. Timeout and cancel call `ps.stop()` so the node stops the work.
- `NodeSession` keeps one RunspacePool open and reuses it for later actions on the same node with the same
  settings (app.remote.sessions lends them out); a reused pool whose shell the node dropped is replaced once.

Kerberos (app.remote.kerberos): the realm and its KDCs come from the Connection, the principal is
`user@REALM`, the service principal `HTTP/<node FQDN>`; each pool opening holds a private credential cache
and the process's Kerberos configuration under one lock, so Kerberos pool openings in one worker process
are serialised (running actions are not).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from pypsrp.complex_objects import ComplexObject, GenericComplexObject, PSInvocationState
from pypsrp.exceptions import WSManFaultError
from pypsrp.powershell import DEFAULT_CONFIGURATION_NAME, PowerShell, RunspacePool
from pypsrp.serializer import TaggedValue
from pypsrp.wsman import WSMan

from app.remote import errors, kerberos, scripts
from app.remote.errors import RemoteError

log = logging.getLogger(__name__)

AUTH_METHODS = ("negotiate", "ntlm", "kerberos", "credssp", "basic")
TEXT_LIMIT = 8000
Record = dict[str, Any]
OnRecord = Callable[[Record], None]
_SALT = os.urandom(16)  # per process: identity hashes cannot be compared elsewhere


@dataclass
class Connection:
    """How to reach one node over WinRM. The password lives only in memory (never repr'd)."""

    host: str
    port: int | None = None
    transport: str = "http"
    auth: str = "negotiate"
    cert_validation: bool = True
    # HTTPS: PEM certificates of the CAs to trust for this node (the deployment's internal CA);
    # None: the system's trust store. Public data, not a secret.
    ca_bundle: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    connection_timeout: int = 10
    read_timeout: int = 30
    operation_timeout: int = 20
    poll_seconds: int = 1
    configuration_name: str = DEFAULT_CONFIGURATION_NAME
    no_proxy: bool = True
    # Kerberos: the realm (the AD domain in capitals), its KDCs ("host:port"; empty: DNS SRV
    # records) and the node's FQDN for its service principal (None: `host`).
    realm: str | None = None
    kdcs: tuple[str, ...] = ()
    spn_host: str | None = None
    kdc_dns: bool = True  # find the realm's KDCs through DNS SRV records when kdcs is empty

    def __post_init__(self) -> None:
        if self.transport not in ("http", "https"):
            raise ValueError(f"transport must be http or https, not {self.transport!r}")
        if self.auth not in AUTH_METHODS:
            raise ValueError(f"auth must be one of {AUTH_METHODS}, not {self.auth!r}")

    @property
    def encryption(self) -> str:
        """Basic over plain HTTP cannot use message encryption; everything else uses it when needed."""
        return "never" if (self.auth == "basic" and self.transport == "http") else "auto"

    @property
    def endpoint(self) -> dict:
        """Where the node is reached (host, port, transport): for the failure messages."""
        port = self.port or (5986 if self.transport == "https" else 5985)
        return {"host": self.host, "port": port, "transport": self.transport}

    @property
    def identity(self) -> tuple:
        """What makes two connections interchangeable; the password only as a salted hash."""
        secret = hashlib.sha256(_SALT + (self.password or "").encode()).hexdigest()
        return (
            self.host,
            self.port,
            self.transport,
            self.auth,
            self.username,
            secret,
            self.cert_validation,
            hashlib.sha256((self.ca_bundle or "").encode()).hexdigest(),
            self.configuration_name,
            self.realm,
            self.kdcs,
            self.spn_host,
            self.kdc_dns,
        )

    @property
    def verify(self) -> bool | str:
        """What pypsrp's cert_validation takes: False, True (system CAs), or a CA bundle file."""
        if not self.cert_validation:
            return False
        return ca_bundle_file(self.ca_bundle) if self.ca_bundle else True

    @property
    def kerberos(self) -> bool:
        """Whether this connection authenticates by Kerberos only."""
        return self.auth in kerberos.KERBEROS_AUTHS

    @property
    def principal(self) -> str | None:
        """The user name as sent: `user@REALM` for Kerberos, as typed otherwise."""
        if self.kerberos and self.username and self.realm:
            return kerberos.principal(self.username, self.realm)
        return self.username

    def wsman(self) -> WSMan:
        """A pypsrp WSMan transport for this node."""
        spn = {}
        if self.auth in ("kerberos", "negotiate"):  # Negotiate asks for the same ticket first
            spn = {
                "negotiate_service": kerberos.SERVICE,
                "negotiate_hostname_override": self.spn_host or self.host,
            }
        return WSMan(
            self.host,
            port=self.port or (5986 if self.transport == "https" else 5985),
            ssl=self.transport == "https",
            auth=self.auth,
            username=self.principal,
            password=self.password,
            cert_validation=self.verify,
            encryption=self.encryption,
            connection_timeout=self.connection_timeout,
            read_timeout=self.read_timeout,
            operation_timeout=self.operation_timeout,
            no_proxy=self.no_proxy,
            **spn,
        )


_CA_DIR: str | None = None
_CA_LOCK = threading.Lock()


def ca_bundle_file(pem: str) -> str:
    """The path of a file holding `pem`, for requests' `verify` (which takes only paths): one
    file per distinct bundle, named by its hash, in a folder of this process (CA certificates
    are public, so sharing a file between connections that trust the same CA is harmless)."""
    global _CA_DIR
    digest = hashlib.sha256(pem.encode()).hexdigest()[:32]
    with _CA_LOCK:
        if _CA_DIR is None or not os.path.isdir(_CA_DIR):
            _CA_DIR = tempfile.mkdtemp(prefix="amsw-ca-")
        path = os.path.join(_CA_DIR, f"{digest}.pem")
        if not os.path.exists(path):
            temp = f"{path}.tmp"
            with open(temp, "w", encoding="ascii") as handle:
                handle.write(pem)
            os.replace(temp, path)
    return path


@dataclass
class RunResult:
    """What a script produced, as plain data."""

    script: str
    data: Any = None
    objects: list[Any] = field(default_factory=list)
    had_errors: bool = False
    errors: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    information: list[Any] = field(default_factory=list)
    duration: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary (errors and warnings are kept, the streamed records are not repeated)."""
        return {
            "data": self.data,
            "had_errors": self.had_errors,
            "errors": self.errors,
            "warnings": self.warnings,
            "duration": round(self.duration, 3),
        }


# --------------------------------------------------------------------------- conversion to plain data


def to_plain(value: Any, depth: int = 0) -> Any:
    """Turn pypsrp's deserialised objects into JSON-ready data (dicts, lists, strings, numbers)."""
    if depth > 8:
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {str(to_plain(k, depth + 1)): to_plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [to_plain(v, depth + 1) for v in value]
    if isinstance(value, GenericComplexObject):
        props = {**value.adapted_properties, **value.extended_properties}
        if props:
            return {k: to_plain(v, depth + 1) for k, v in props.items()}
        if value.property_sets:
            return [to_plain(v, depth + 1) for v in value.property_sets]
        return None if value.to_string is None else str(value)
    if isinstance(value, ComplexObject):
        return _safe_str(value)
    return str(value)


def _safe_str(value: Any) -> str:
    try:
        text = str(value)
    except Exception:  # noqa: BLE001 - a display string is best effort
        text = repr(value)
    return "" if text == "None" else text


def _clip(text: str) -> str:
    return text if len(text) <= TEXT_LIMIT else text[:TEXT_LIMIT] + " [...]"


def parse_json_output(objects: list[Any]) -> Any:
    """The script's result: its (last) JSON string output parsed, or None when there is none."""
    for value in reversed(objects):
        if isinstance(value, str) and value.strip()[:1] in ("{", "["):
            try:
                return json.loads(value)
            except ValueError:
                continue
    return None


def error_record(record: Any) -> dict[str, Any]:
    """An ErrorRecord as plain data: message, category and the script position when known."""
    message = ""
    exception = getattr(record, "exception", None)
    if isinstance(exception, GenericComplexObject):
        message = str(
            exception.adapted_properties.get("Message")
            or exception.extended_properties.get("Message")
            or ""
        )
    message = message or _safe_str(getattr(record, "message", None) or "") or _safe_str(record)
    return {
        "message": _clip(message),
        "category": _safe_str(getattr(record, "reason", None) or ""),
        "id": _safe_str(getattr(record, "fq_error", None) or ""),
        "position": _clip(_safe_str(getattr(record, "script_stacktrace", None) or "")),
    }


def _progress(record: Any) -> dict[str, Any]:
    return {
        "activity": _safe_str(record.activity or ""),
        "status": _safe_str(record.description or ""),
        "operation": _safe_str(record.current_operation or ""),
        "percent": record.percent_complete if record.percent_complete is not None else -1,
        "completed": "Completed" in _safe_str(getattr(record, "progress_type", "")),
    }


def _information(record: Any) -> dict[str, Any]:
    data = record.message_data
    text = (
        _safe_str(data) if isinstance(data, ComplexObject) else ("" if data is None else str(data))
    )
    if isinstance(data, GenericComplexObject):
        text = str(
            data.adapted_properties.get("Message")
            or data.extended_properties.get("Message")
            or text
        )
    return {"text": _clip(text), "tags": [str(t) for t in (record.tags or [])]}


class _StreamCursor:
    """Remembers how much of each pypsrp list was delivered, to hand over only what is new."""

    STREAMS = ("error", "warning", "information", "progress", "verbose", "debug")

    def __init__(self) -> None:
        self.seen: dict[str, int] = dict.fromkeys(("output", *self.STREAMS), 0)

    def new(self, ps: PowerShell) -> Iterator[Record]:
        yield from (self._output(v) for v in self._take("output", ps.output))
        for name in self.STREAMS:
            for rec in self._take(name, getattr(ps.streams, name)):
                yield self._convert(name, rec)

    def _take(self, name: str, items: list) -> list:
        start = self.seen[name]
        self.seen[name] = len(items)
        return items[start:]

    @staticmethod
    def _output(value: Any) -> Record:
        plain = to_plain(value)
        text = plain if isinstance(plain, str) else json.dumps(plain, default=str)
        return {"stream": "output", "text": _clip(text)}

    @staticmethod
    def _convert(name: str, rec: Any) -> Record:
        if name == "error":
            return {"stream": "error", **error_record(rec)}
        if name == "progress":
            return {"stream": "progress", **_progress(rec)}
        if name == "information":
            return {"stream": "information", **_information(rec)}
        return {"stream": name, "text": _clip(_safe_str(getattr(rec, "message", None) or rec))}


# --------------------------------------------------------------------------- Kerberos credential cache


@contextlib.contextmanager
def kerberos_ccache(conn: Connection) -> Iterator[None]:
    """For every method that may use Kerberos (Negotiate and CredSSP try it first): the realm's
    settings and a private credential cache while the block runs."""
    if conn.auth not in kerberos.MAY_USE_KERBEROS or not conn.realm:
        yield
        return
    with kerberos.opening(conn.realm, conn.kdcs, conn.kdc_dns):
        yield


# --------------------------------------------------------------------------- sessions


def _settle_environment(pool: RunspacePool) -> None:
    """Stop requests re-reading the proxy environment on every WinRM message of an open pool.

    pypsrp resolved the node's proxy (or none: `Connection.no_proxy`) and CA settings from the
    environment when it built the HTTP session, for this one endpoint; with trust_env on, requests
    would scan os.environ again for each message (a measurable share of a short action's CPU)."""
    session = getattr(getattr(pool.connection, "transport", None), "session", None)
    if session is not None:
        session.trust_env = False


class NodeSession:
    """One RunspacePool on one node, opened on first use and reused for that node's actions."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._pool: RunspacePool | None = None
        self._lock = threading.Lock()
        self.last_used = time.monotonic()
        self.runs = 0

    @property
    def is_open(self) -> bool:
        """Whether a pool is open (a session whose pool was discarded after an error is not)."""
        return self._pool is not None

    def _open(self) -> RunspacePool:
        if self._pool is not None:
            return self._pool
        try:
            with kerberos_ccache(self.conn):
                pool = RunspacePool(
                    self.conn.wsman(), configuration_name=self.conn.configuration_name
                )
                pool.open()
        except Exception as exc:  # noqa: BLE001 - classified for the operator
            raise errors.classify(exc, **self.conn.endpoint) from None
        _settle_environment(pool)
        self._pool = pool
        return pool

    def upload(
        self, local_path: str, remote_path: str, on_progress: Callable[[int, int], None] | None
    ) -> str:
        """Copy a file to this node (its own pool; the node verifies the checksum)."""
        with self._lock:
            self.last_used = time.monotonic()
            return copy_file(self.conn, local_path, remote_path, on_progress)

    def run(
        self,
        script_name: str,
        params: dict[str, Any] | None = None,
        on_record: OnRecord | None = None,
        timeout: float | None = None,
        cancel_event: threading.Event | None = None,
        secure_params: dict[str, str] | None = None,
        on_started: Callable[[], None] | None = None,
    ) -> RunResult:
        """Run a vetted script in this session's pool (one pipeline at a time).

        `secure_params` are sent as PSRP SecureStrings (encrypted with the pool's session key), so the
        script must declare them `[SecureString]`. `on_started` is called once the node has accepted
        the pipeline and before the first poll, so a caller can record the start while the node
        works; if it raises, the pipeline is stopped."""
        vetted_text = scripts.load(script_name)
        params = scripts.expand_parameters(script_name, params or {})
        with self._lock:
            self.last_used = time.monotonic()
            try:
                return self._invoke(
                    script_name,
                    vetted_text,
                    params,
                    secure_params or {},
                    on_record,
                    timeout,
                    cancel_event,
                    on_started,
                )
            except RemoteError as err:
                if err.category not in (errors.SCRIPT_ERROR, errors.ACCESS_DENIED):
                    self._discard()
                raise
            except BaseException:
                self._discard()
                raise
            finally:
                self.runs += 1
                self.last_used = time.monotonic()

    def _invoke(
        self, name, vetted_text, params, secure, on_record, timeout, cancel_event, on_started
    ) -> RunResult:
        started = time.monotonic()
        deadline = started + timeout if timeout else None
        ps = self._begin(vetted_text, params, secure)
        if on_started is not None:
            try:
                on_started()
            except BaseException:
                self._stop(ps)
                raise
        cursor = _StreamCursor()
        result = RunResult(script=name)
        while ps.state == PSInvocationState.RUNNING:
            self._check_stop(ps, deadline, cancel_event, timeout)
            try:
                ps.poll_invoke(timeout=self.conn.poll_seconds)
            except Exception as exc:  # noqa: BLE001 - a drop mid-run is not safely retryable
                err = errors.classify(exc, **self.conn.endpoint)
                err.transient = False
                raise err from None
            self._deliver(cursor, ps, on_record, result)
        self._deliver(cursor, ps, on_record, result)
        return self._finish(ps, result, started)

    def _begin(self, vetted_text: str, params: dict, secure: dict) -> PowerShell:
        """Start the pipeline; a reused pool the node refused (shell gone) is replaced once."""
        reused = self._pool is not None
        try:
            return self._start(self._open(), vetted_text, params, secure)
        except WSManFaultError as exc:
            if not reused:
                raise errors.classify(exc, **self.conn.endpoint) from None
            log.info("Pool on %s was dropped by the node; opening a new one", self.conn.host)
            self._discard()
        except Exception as exc:  # noqa: BLE001
            raise errors.classify(exc, **self.conn.endpoint) from None
        try:
            return self._start(self._open(), vetted_text, params, secure)
        except Exception as exc:  # noqa: BLE001
            raise errors.classify(exc, **self.conn.endpoint) from None

    @staticmethod
    def _start(pool: RunspacePool, vetted_text: str, params: dict, secure: dict) -> PowerShell:
        ps = PowerShell(pool)
        if secure:
            pool.exchange_keys()
            params = {**params, **{k: TaggedValue("SS", v) for k, v in secure.items()}}
        ps.add_script(vetted_text).add_parameters(params)
        ps.begin_invoke()
        return ps

    def _check_stop(self, ps, deadline, cancel_event, timeout) -> None:
        if cancel_event is not None and cancel_event.is_set():
            self._stop(ps)
            raise errors.make(
                errors.CANCELLED, "Stopped on request; the node was asked to stop the script."
            )
        if deadline is not None and time.monotonic() > deadline:
            self._stop(ps)
            raise errors.make(
                errors.TIMEOUT, f"No result after {timeout:g} s; the script was stopped."
            )

    def _stop(self, ps: PowerShell) -> None:
        with contextlib.suppress(Exception):
            ps.stop()

    @staticmethod
    def _deliver(
        cursor: _StreamCursor, ps: PowerShell, on_record: OnRecord | None, result: RunResult
    ) -> None:
        for record in cursor.new(ps):
            if record["stream"] == "error":
                result.errors.append({k: v for k, v in record.items() if k != "stream"})
            elif record["stream"] == "warning":
                result.warnings.append(record["text"])
            elif record["stream"] == "information":
                result.information.append(record["text"])
            if on_record is not None:
                on_record(record)

    def _finish(self, ps: PowerShell, result: RunResult, started: float) -> RunResult:
        result.objects = [to_plain(v) for v in ps.output]
        result.data = parse_json_output(result.objects)
        result.had_errors = bool(ps.had_errors or result.errors)
        result.duration = time.monotonic() - started
        if ps.state == PSInvocationState.FAILED:
            message = (
                "; ".join(e["message"] for e in result.errors if e["message"])
                or "The script failed."
            )
            category = errors.mentions_access_denied(message) or errors.SCRIPT_ERROR
            raise RemoteError(category, _clip(message))
        if ps.state == PSInvocationState.STOPPED:
            raise errors.make(errors.CANCELLED, "The node stopped the script.")
        return result

    def _discard(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            with contextlib.suppress(Exception):
                pool.close()

    def close(self) -> None:
        """Close the pool (Delete on the node); safe to call twice."""
        with self._lock:
            self._discard()


def run_script(
    conn: Connection,
    script_name: str,
    params: dict[str, Any] | None = None,
    on_record: OnRecord | None = None,
    timeout: float | None = None,
    cancel_event: threading.Event | None = None,
    session: NodeSession | None = None,
    secure_params: dict[str, str] | None = None,
) -> RunResult:
    """Run one vetted script on one node; a fresh pool unless a `session` is given."""
    own = session is None
    session = session or NodeSession(conn)
    try:
        return session.run(script_name, params, on_record, timeout, cancel_event, secure_params)
    finally:
        if own:
            session.close()


# --------------------------------------------------------------------------- file copy


def _chunks(path: str, size: int, total: int, on_progress) -> Iterator[list[str]]:
    sha1 = hashlib.sha1()  # noqa: S324 - the checksum pypsrp's copy.ps1 verifies
    sent = 0
    with open(path, "rb") as handle:
        for data in iter(lambda: handle.read(size), b""):
            sent += len(data)
            sha1.update(data)
            chunk = [base64.b64encode(data).decode()]
            if sent == total:
                chunk.append(base64.b64encode(sha1.hexdigest().encode()).decode())
            if on_progress is not None:
                on_progress(sent, total)
            yield chunk
    if sent == 0:
        yield ["", base64.b64encode(sha1.hexdigest().encode()).decode()]


def copy_file(
    conn: Connection,
    local_path: str,
    remote_path: str,
    on_progress: Callable[[int, int], None] | None = None,
) -> str:
    """Copy a local file to the node the way pypsrp's Client.copy does (the node verifies the SHA-1),
    reporting (bytes_sent, total) as chunks go out. Returns the absolute remote path."""
    total = os.path.getsize(local_path)
    try:
        with kerberos_ccache(conn):
            wsman = conn.wsman()
            pool = RunspacePool(wsman, configuration_name=conn.configuration_name)
            pool.open()
        with pool:
            size = int((wsman.max_payload_size - 82) / 4 * 3)
            ps = PowerShell(pool)
            ps.add_script(scripts.copy_script()).add_argument(remote_path).add_argument(False)
            ps.invoke(input=_chunks(local_path, size, total, on_progress))
    except Exception as exc:  # noqa: BLE001
        raise errors.classify(exc, **conn.endpoint) from None
    if ps.had_errors or not ps.output:
        messages = "; ".join(error_record(e)["message"] for e in ps.streams.error) or "copy failed"
        raise RemoteError(errors.mentions_access_denied(messages) or errors.SCRIPT_ERROR, messages)
    return str(ps.output[-1]).strip()
