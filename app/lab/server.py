"""The lab's HTTP endpoints: one listening socket per simulated node, path /wsman."""

import base64
import contextlib
import datetime
import functools
import http.server
import logging
import socket
import socketserver
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

from app.lab import auth, wsman
from app.lab.dispatch import Dispatcher, ScriptCatalog
from app.lab.psrp import ConnectionDropped, Session, Shell
from app.lab.store import LabStore

log = logging.getLogger(__name__)

POWERSHELL_URI = "http://schemas.microsoft.com/powershell/"
SHELL_URI = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
CONFIG_URI = "http://schemas.microsoft.com/wbem/wsman/1/config"
MAX_ENVELOPE_KB = wsman.MAX_ENVELOPE_KB
# How soon a node's listener notices stop() (socketserver's default is 0.5 s).
SHUTDOWN_POLL_SECONDS = 0.05
_PHRASES = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    413: "Request Entity Too Large",
    500: "Error",
}


class LabServer:
    """Simulated Windows nodes on loopback; node i listens on base_port + i - 1 (0: any port).

    The WinRM limits (README "WinRM protocol rules") default to Windows' own values; tests may
    lower them: `max_shells_per_user` (MaxShellsPerUser), `idle_timeout_ms` (WinRS IdleTimeout
    for shells whose Create asks for none), `max_timeout_ms` (MaxTimeoutms) and `max_envelope_kb`
    (MaxEnvelopeSizekb)."""

    def __init__(
        self,
        store: LabStore,
        node_names: Iterable[str],
        base_port: int,
        username: str,
        password: str,
        https: bool = False,
        extra_scripts_dirs: Iterable = (),
        host: str = "127.0.0.1",
        *,
        max_shells_per_user: int = wsman.MAX_SHELLS_PER_USER,
        idle_timeout_ms: int = wsman.IDLE_TIMEOUT_MS,
        max_timeout_ms: int = wsman.MAX_TIMEOUT_MS,
        max_envelope_kb: int = wsman.MAX_ENVELOPE_KB,
        certificate: tuple[Path, Path] | None = None,
        keytab: Path | None = None,
    ) -> None:
        self.store = store
        self.node_names = list(node_names)
        self.base_port = base_port
        self.username = username
        self.password = password
        self.https = https
        self.certificate = certificate  # HTTPS: (cert, key) files; None = self-signed
        self.keytab = keytab  # Kerberos: the HTTP/<node FQDN> keys; None = no Kerberos
        self.host = host
        self.max_shells_per_user = max_shells_per_user
        self.idle_timeout_ms = idle_timeout_ms
        self.max_timeout_ms = max_timeout_ms
        self.max_envelope_kb = max_envelope_kb
        self.catalog = ScriptCatalog(extra_scripts_dirs)
        self.dispatcher = Dispatcher(
            store,
            self.catalog,
            on_reboot=self.reboot,
            check_password=self.password_ok,
            shell_alive=self.shell_alive,
        )
        self.ports: dict[str, int] = {}
        self.shells: dict[str, dict[str, Shell]] = {n: {} for n in self.node_names}
        self.last_auth: dict[str, str] = {}
        self.auth_methods: dict[str, set[str]] = {}  # every method a session of the node used
        self._servers: dict[str, NodeServer] = {}
        self._down_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def start(self) -> "LabServer":
        """Bind every node's socket and serve in background threads."""
        auth.register_ntlm_user(self.store.folder, self.username, self.password)
        if self.keytab is not None:
            auth.use_keytab(self.keytab)
        tls = auth.tls_context(self.store.folder, self.certificate) if self.https else None
        for index, node in enumerate(self.node_names):
            port = self.base_port + index if self.base_port else 0
            server = NodeServer((self.host, port), self, node, tls)
            self.ports[node] = server.server_address[1]
            self._servers[node] = server
            name = f"lab-{node}"
            serve = functools.partial(server.serve_forever, poll_interval=SHUTDOWN_POLL_SECONDS)
            threading.Thread(target=serve, name=name, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening, drop connections and pools."""
        for node, server in self._servers.items():
            server.shutdown()
            server.drop_connections()
            server.server_close()
            self._kill_shells(node)
        self._servers.clear()

    def url(self, node: str) -> str:
        """The endpoint URL of a node."""
        scheme = "https" if self.https else "http"
        return f"{scheme}://{self.host}:{self.ports[node]}/wsman"

    def is_down(self, node: str) -> bool:
        """Unreachable by fault or rebooting."""
        if time.monotonic() < self._down_until.get(node, 0):
            return True
        return node in (self.store.peek("faults", "unreachable", default=[]) or [])

    def restarting(self, node: str) -> bool:
        """A handler modelled a restart: `nodes[node]["down_until"]` (ISO UTC) is in the future."""
        until = self.store.peek("nodes", node, "down_until")
        if not until:
            return False
        try:
            moment = datetime.datetime.fromisoformat(str(until).replace("Z", "+00:00"))
        except ValueError:
            return False
        return datetime.datetime.now(datetime.UTC) < moment

    def rejects_auth(self, node: str) -> bool:
        """The auth_failure fault: every credential is refused."""
        return node in (self.store.peek("faults", "auth_failure", default=[]) or [])

    def reboot(self, node: str, seconds: float) -> None:
        """Drop every connection and pool of `node`; it answers again after `seconds`."""
        self._down_until[node] = time.monotonic() + seconds
        self._kill_shells(node)
        server = self._servers.get(node)
        if server:
            server.drop_connections()
        threading.Timer(seconds, self._back_up, args=(node,)).start()

    def shell_alive(self, node: str, shell_id: str) -> bool:
        """Whether a shell is still open on the node (closed, expired or killed shells are gone)."""
        self._expire_idle(node)
        shell = self.shells.get(node, {}).get(shell_id)
        return shell is not None and not shell.dead

    def password_ok(self, user: str, password: str) -> bool:
        """Whether a logon on a node (a scheduled task) with these credentials would succeed."""
        if auth.same_user(user, self.username) and password == self.password:
            return True
        return auth.known_password(user, password)

    def kerberos_host(self, node: str) -> str | None:
        """The FQDN of the node's HTTP/ service principal when it accepts Kerberos, else None."""
        if self.keytab is None:
            return None
        return str(self.store.peek("nodes", node, "fqdn", default=node)).lower()

    def credssp_enabled(self, node: str) -> bool:
        """Whether the node's WinRM service accepts CredSSP (Enable-WSManCredSSP -Role Server);
        Windows ships with it off (rule credssp_server)."""
        return bool(self.store.peek("nodes", node, "winrm", "credssp", default=False))

    def session(self, node: str, conn: auth.ConnectionAuth) -> Session:
        """The session identity passed to handlers: "credssp" only after a real CredSSP handshake
        whose delegated password the node accepted (so the session may make the second hop)."""
        user = conn.client_user or self.username
        method = conn.method or "none"
        self.last_auth[node] = method
        self.auth_methods.setdefault(node, set()).add(method)
        return Session(node=node, auth=method, username=user)

    def handle(self, node: str, request: wsman.Request, conn: auth.ConnectionAuth) -> bytes:
        """Serve one WSMan request; raises WSManFault or ConnectionDropped."""
        verb = request.verb
        self._expire_idle(node)
        self._end_shells_at_restart(node)
        if request.operation_timeout is None:
            raise wsman.invalid_timeout_fault(request.timeout_text)
        if verb == "Create":
            return self._create(node, request, conn)
        if verb == "Get":
            return self._get(node, request)
        shell = self._shell(node, request)
        with shell.activity():
            return self._on_shell(node, shell, verb, request)

    def _on_shell(self, node: str, shell: Shell, verb: str, request: wsman.Request) -> bytes:
        if verb == "Receive":
            return self._receive(shell, request)
        if verb == "Command":
            return self._command(shell, request)
        if verb == "Send":
            return self._send(shell, request)
        if verb == "Signal":
            return self._signal(shell, request)
        if verb == "Delete":
            shell.close()
            self.shells[node].pop(shell.shell_id, None)
            return wsman.empty_response(request, wsman.TRANSFER + "DeleteResponse")
        raise wsman.WSManFault(wsman.UNSUPPORTED_ACTION, f"The lab does not support {verb}.")

    def _create(self, node: str, request: wsman.Request, conn: auth.ConnectionAuth) -> bytes:
        if self.restarting(node):
            raise ConnectionDropped()
        if not request.resource_uri.startswith(POWERSHELL_URI):
            raise wsman.WSManFault(wsman.UNSUPPORTED_ACTION, "The lab only hosts PowerShell.")
        shell_id = (request.body.attrib.get("ShellId") or str(uuid.uuid4())).upper()
        creation = wsman.body_find(request, "pwsh:creationXml")
        session = self.session(node, conn)
        with self._lock:
            self._check_shell_quota(node, session.username)
            shell = Shell(shell_id, session, self.dispatcher, self._idle_seconds(request))
            self.shells[node][shell_id] = shell
        try:
            shell.feed(base64.b64decode(creation.text or "") if creation is not None else b"")
        except BaseException:
            self.shells[node].pop(shell_id, None)
            raise
        owner = f"{node.upper()}\\{auth.split_user(session.username)[1]}"
        return wsman.create_response(
            request, shell_id, self.url(node), owner, idle_seconds=shell.idle_timeout
        )

    def _check_shell_quota(self, node: str, user: str) -> None:
        """MaxShellsPerUser: the user's open shells on this node, counted before a Create."""
        shells = list(self.shells[node].values())
        mine = [s for s in shells if not s.dead and auth.same_user(s.session.username, user)]
        if len(mine) >= self.max_shells_per_user:
            raise wsman.shell_quota_fault(self.max_shells_per_user)

    def _idle_seconds(self, request: wsman.Request) -> float:
        """The shell's IdleTimeout: the one its Create asks for, else the lab's default."""
        asked = wsman.body_find(request, "rsp:IdleTimeOut")
        seconds = wsman.parse_duration(asked.text or "", None) if asked is not None else None
        return seconds if seconds is not None else self.idle_timeout_ms / 1000

    def _expire_idle(self, node: str) -> None:
        """WinRS IdleTimeout: delete every shell of the node idle for longer than its timeout."""
        now = time.monotonic()
        with self._lock:
            shells = self.shells.get(node, {})
            for shell_id, shell in list(shells.items()):
                if shell.idle_expired(now):
                    log.info("lab %s: shell %s idle for too long, deleted", node, shell_id)
                    shells.pop(shell_id, None)
                    shell.expire()

    def _end_shells_at_restart(self, node: str) -> None:
        """Rule restart_ends_shells for a restart a script scheduled (`shutdown /r /t N`): once its
        moment (`nodes[node]["restart_at"]`) has passed, every shell opened before it is gone."""
        when = self.store.peek("nodes", node, "restart_at")
        if not when:
            return
        try:
            moment = datetime.datetime.fromisoformat(str(when).replace("Z", "+00:00")).timestamp()
        except ValueError:
            return
        if time.time() < moment:
            return
        with self._lock:
            shells = self.shells.get(node, {})
            for shell_id, shell in list(shells.items()):
                if shell.created < moment:
                    log.info("lab %s: shell %s ended by the restart", node, shell_id)
                    shells.pop(shell_id, None)
                    shell.kill()

    def _get(self, node: str, request: wsman.Request) -> bytes:
        if request.resource_uri.startswith(CONFIG_URI):
            return wsman.config_response(request, self.max_envelope_kb)
        shell = self._shell(node, request, provider=True)
        body = wsman.shell_xml(
            shell.shell_id, POWERSHELL_URI, shell.session.username, idle_seconds=shell.idle_timeout
        )
        return wsman.envelope(request, wsman.TRANSFER + "GetResponse", body)

    def _receive(self, shell: Shell, request: wsman.Request) -> bytes:
        stream = wsman.body_find(request, "rsp:DesiredStream")
        command_id = stream.attrib.get("CommandId") if stream is not None else None
        try:
            pipeline_id = uuid.UUID(command_id) if command_id else None
        except ValueError:
            raise wsman.command_not_found() from None
        if pipeline_id and pipeline_id not in shell.runs:
            raise wsman.command_not_found()
        budget = request.max_envelope_size - wsman.response_overhead(request, command_id)
        # MS-WSMV 3.1.4.1.6: an OperationTimeout above MaxTimeoutms is served as MaxTimeoutms.
        timeout = min(request.operation_timeout, self.max_timeout_ms / 1000)
        chunks, done = shell.receive(pipeline_id, budget, timeout)
        return wsman.receive_response(request, chunks, command_id, done)

    def _command(self, shell: Shell, request: wsman.Request) -> bytes:
        command_id = (request.body.attrib.get("CommandId") or str(uuid.uuid4())).upper()
        arguments = wsman.body_find(request, "rsp:Arguments")
        shell.command(
            command_id, base64.b64decode(arguments.text or "") if arguments is not None else b""
        )
        return wsman.command_response(request, command_id)

    def _send(self, shell: Shell, request: wsman.Request) -> bytes:
        for stream in request.body.findall("rsp:Stream", wsman.NS):
            shell.feed(base64.b64decode(stream.text or ""))
        return wsman.empty_response(request, wsman.SHELL + "SendResponse")

    def _signal(self, shell: Shell, request: wsman.Request) -> bytes:
        command_id = request.body.attrib.get("CommandId")
        code = wsman.body_find(request, "rsp:Code")
        pipeline_id = uuid.UUID(command_id) if command_id else None
        shell.signal(pipeline_id, code.text if code is not None else "")
        return wsman.empty_response(request, wsman.SHELL + "SignalResponse")

    def _shell(self, node: str, request: wsman.Request, provider: bool = False) -> Shell:
        shell = self.shells[node].get(request.shell_id or "")
        if shell is None:
            raise wsman.shell_not_found(request.shell_id, provider=provider)
        return shell

    def _kill_shells(self, node: str) -> None:
        for shell in list(self.shells.get(node, {}).values()):
            shell.kill()
        self.shells[node] = {}

    def _back_up(self, node: str) -> None:
        with self.store.transaction() as state:
            entry = state.setdefault("nodes", {}).setdefault(node, {})
            entry["pending_reboot"] = False
            entry["boot_count"] = int(entry.get("boot_count", 0)) + 1


class NodeServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """A threaded HTTP/1.1 server for one node, with TCP_NODELAY and optional TLS."""

    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, address, lab: LabServer, node: str, tls) -> None:
        self.lab = lab
        self.node = node
        self.tls = tls
        self.connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        super().__init__(address, LabRequestHandler)

    def verify_request(self, request, client_address) -> bool:
        """Refuse connections while the node is unreachable (reset right after accept)."""
        if self.lab.is_down(self.node) or self.lab.restarting(self.node):
            with contextlib.suppress(OSError):
                request.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
            return False
        return True

    def finish_request(self, request, client_address) -> None:
        """Per connection (own thread): TCP_NODELAY, TLS handshake, then the keep-alive requests."""
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is not None:
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (OSError, ValueError):
                return
        with self.conn_lock:
            self.connections.add(request)
        try:
            super().finish_request(request, client_address)
        finally:
            with self.conn_lock:
                self.connections.discard(request)

    def drop_connections(self) -> None:
        """Abort every open connection (simulated reboot or shutdown)."""
        with self.conn_lock:
            for sock in list(self.connections):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request, client_address) -> None:
        """Connection errors are routine here (clients vanish, nodes reboot)."""
        log.debug("lab connection error from %s", client_address, exc_info=True)


class LabRequestHandler(http.server.BaseHTTPRequestHandler):
    """One keep-alive connection: authentication state lives as long as it does."""

    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-HTTPAPI/2.0"
    sys_version = ""
    server: NodeServer

    def setup(self) -> None:
        """Create the connection's auth context."""
        super().setup()
        lab, node = self.server.lab, self.server.node
        self.conn = auth.ConnectionAuth(lab.username, lab.password, lab.kerberos_host(node))

    def log_message(self, format, *args) -> None:
        """Quiet: one debug line per request."""
        log.debug("%s %s", self.address_string(), format % args)

    def do_POST(self) -> None:
        """Authenticate, decrypt, dispatch, encrypt, answer."""
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        lab, node = self.server.lab, self.server.node
        if lab.is_down(node):
            self._drop()
            return
        extra = self._authorise()
        if extra is None:
            return
        content_type = self.headers.get("Content-Type", "")
        encrypted = content_type.startswith(("multipart/encrypted", "multipart/x-multi-encrypted"))
        if encrypted:
            body = self.conn.unwrap(body)
        if not body:
            self._reply(200, b"", extra, False)
            return
        if len(body) > lab.max_envelope_kb * 1024:
            # MaxEnvelopeSizekb: WinRM answers an oversized request with HTTP 413 and no SOAP body
            # (pypsrp: WinRMTransportError code 413; Windows' client: 0x80338111).
            self._reply(413, b"", extra, False)
            return
        self._serve(body, extra, encrypted)

    def _serve(self, body: bytes, extra: list, encrypted: bool) -> None:
        lab, node, request = self.server.lab, self.server.node, None
        try:
            request = wsman.parse_request(body)
            status, payload = 200, lab.handle(node, request, self.conn)
        except ConnectionDropped:
            self._drop()
            return
        except wsman.WSManFault as fault:
            status, payload = 500, wsman.fault_envelope(request, fault, self.server.lab.host)
        self._reply(status, payload, extra, encrypted)

    def _authorise(self) -> list | None:
        """Extra response headers when the request may proceed, None when a 401 was sent."""
        lab, node = self.server.lab, self.server.node
        header = self.headers.get("Authorization")
        reject = lab.rejects_auth(node)
        credssp = lab.credssp_enabled(node)
        challenge = auth.challenge(credssp)
        if not header:
            if self.conn.encrypting and self.conn.method != "basic" and not reject:
                return []
            self._reply(401, b"", challenge, False)
            return None
        scheme = header.split(" ", 1)[0]
        try:
            step = self.conn.step(header, reject, credssp)
            if step.done and self.conn.delegated and not lab.password_ok(*self.conn.delegated):
                # CredSSP logs on with the delegated credentials: a wrong one is a logon failure.
                raise auth.AuthDenied("the delegated credentials were refused")
        except auth.AuthDenied:
            self._reply(401, b"", challenge, False)
            return None
        token = base64.b64encode(step.token or b"").decode()
        headers = [("WWW-Authenticate", f"{scheme} {token}")] if step.token else []
        if not step.done:
            self._reply(401, b"", headers, False)
            return None
        return headers

    def _reply(self, status: int, body: bytes, headers: list, encrypted: bool) -> None:
        content_type = "application/soap+xml;charset=UTF-8"
        if encrypted and body:
            content_type, body = self.conn.wrap(body)
        lines = [
            f"HTTP/1.1 {status} {_PHRASES.get(status, 'Error')}",
            "Server: Microsoft-HTTPAPI/2.0",
        ]
        if body:
            lines.append(f"Content-Type: {content_type}")
        lines += [f"{name}: {value}" for name, value in headers]
        lines.append(f"Content-Length: {len(body)}")
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
