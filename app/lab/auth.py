"""HTTP authentication for the lab: Basic, NTLM/Negotiate, Kerberos and CredSSP with WinRM
message encryption, TLS.

Kerberos is real too (rule kerberos_server): given a keytab of `HTTP/<node FQDN>` keys from an
MIT KDC (tests/kdc.py starts one), pyspnego's acceptor verifies the client's service ticket with
GSSAPI, raw or inside SPNEGO, and the session is recorded as "kerberos". Without a keytab a node
has no key, and a Kerberos token is refused, as on a machine whose SPN is missing.

CredSSP is the real handshake (MS-CSSP, pyspnego's acceptor): TLS inside the Authorization
tokens, NTLM inside the TLS, then the client's password delegated to the node. A node offers it
only when its WinRM service has CredSSP enabled (`nodes[N]["winrm"]["credssp"]`, what
Enable-WSManCredSSP -Role Server sets; off as Windows ships)."""

import base64
import dataclasses
import datetime
import ipaddress
import os
import re
import ssl
import struct
import threading
from pathlib import Path

import spnego
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from spnego._ntlm_raw.crypto import lmowfv1, ntowfv1  # hashes for NTLM_USER_FILE lines

SPNEGO_PROTOCOL = "application/HTTP-SPNEGO-session-encrypted"
CREDSSP_PROTOCOL = "application/HTTP-CredSSP-session-encrypted"
BOUNDARY = "Encrypted Boundary"
CHALLENGE_HEADERS = [("WWW-Authenticate", "Negotiate"), ("WWW-Authenticate", 'Basic realm="WSMAN"')]
CREDSSP_CHALLENGE = ("WWW-Authenticate", "CredSSP")
# WinRM encrypts CredSSP bodies in TLS records of at most 16 KiB, one MIME part each
# (multipart/x-multi-encrypted), which is what pypsrp sends and reads.
CREDSSP_CHUNK = 16384
_TOKEN = re.compile(r"^(Negotiate|NTLM|Kerberos|Basic|CredSSP)\s+(\S+)\s*$", re.I)

_ntlm_users: dict[str, str] = {}
_ntlm_lock = threading.Lock()


class AuthDenied(Exception):
    """Credentials were wrong (or the node rejects every credential): answer 401."""


@dataclasses.dataclass
class AuthStep:
    """Outcome of one Authorization header: done (serve the request) or a token to send back."""

    done: bool
    token: bytes | None = None


def split_user(username: str) -> tuple[str, str]:
    """Split `DOMAIN\\user` or `user@domain` into (domain, user)."""
    if "\\" in username:
        domain, user = username.split("\\", 1)
        return domain, user
    if "@" in username:
        user, domain = username.split("@", 1)
        return domain, user
    return "", username


def same_user(a: str, b: str) -> bool:
    """Windows compares account names case-insensitively, ignoring a matching domain part."""
    (dom_a, user_a), (dom_b, user_b) = split_user(a), split_user(b)
    domains_ok = not dom_a or not dom_b or dom_a.lower() == dom_b.lower()
    return domains_ok and user_a.lower() == user_b.lower()


def known_password(username: str, password: str) -> bool:
    """Whether an account registered with register_ntlm_user has this password (what a node's
    logon, e.g. a scheduled task's, would accept)."""
    with _ntlm_lock:
        return any(
            same_user(username, user) and secret == password for user, secret in _ntlm_users.items()
        )


# In a Kerberos AP-REQ the ticket's service name is in clear: name-string, a SEQUENCE OF
# GeneralString (tag 0x1B), here "HTTP" then the host.
_SNAME = re.compile(rb"\x1b\x04(HTTP)\x1b([\x01-\x7f])", re.I)


def ticket_service(token: bytes) -> str | None:
    """The `HTTP/<host>` a Kerberos token (raw or inside SPNEGO) carries a ticket for, or None
    for a token that holds no Kerberos ticket (NTLM, a later leg)."""
    match = _SNAME.search(token)
    if match is None:
        return None
    start = match.end()
    host = token[start : start + match.group(2)[0]]
    return f"{match.group(1).decode()}/{host.decode('ascii', 'replace')}"


def use_keytab(keytab: Path) -> None:
    """Accept Kerberos with the HTTP/<node> keys in `keytab` (process-wide KRB5_KTNAME, like
    NTLM_USER_FILE): the lab's nodes then accept tickets from the KDC that issued the keys."""
    os.environ["KRB5_KTNAME"] = f"FILE:{keytab}"


def register_ntlm_user(folder: Path, username: str, password: str) -> None:
    """Add a credential to the private NTLM_USER_FILE (process-wide) read by pyspnego's acceptor."""
    with _ntlm_lock:
        _ntlm_users[username] = password
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / ".ntlm_users"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.writelines(_ntlm_line(u, p) for u, p in _ntlm_users.items())
        os.chmod(path, 0o600)
        os.environ["NTLM_USER_FILE"] = str(path)


def _ntlm_line(username: str, password: str) -> str:
    domain, user = split_user(username)
    account = f"{domain}\\{user}" if domain else user
    lm = lmowfv1(password).hex().upper()
    nt = ntowfv1(password).hex().upper()
    return f"{account}:0:{lm}:{nt}:[U]:LCT-00000000\n"


def challenge(credssp: bool) -> list[tuple[str, str]]:
    """The WWW-Authenticate headers of a 401: CredSSP only where the node's service enables it."""
    return [*CHALLENGE_HEADERS, CREDSSP_CHALLENGE] if credssp else list(CHALLENGE_HEADERS)


class ConnectionAuth:
    """Authentication state of one HTTP keep-alive connection."""

    def __init__(self, username: str, password: str, kerberos_host: str | None = None) -> None:
        self.username = username
        self.password = password
        # Kerberos: the node accepts tickets for HTTP/<kerberos_host> only (its own key)
        self.kerberos_host = kerberos_host
        self.method: str | None = None
        self.client_user: str | None = None
        # CredSSP: the (user, password) the client delegated to the node, once the handshake ends.
        self.delegated: tuple[str, str] | None = None
        self._context = None

    @property
    def encrypting(self) -> bool:
        """True once an NTLM/Negotiate context exists that can unwrap multipart/encrypted bodies."""
        return self._context is not None and self._context.complete

    def step(self, header: str, reject_all: bool, credssp: bool = False) -> AuthStep:
        """Process an Authorization header; raise AuthDenied on bad credentials. `credssp`: the
        node's WinRM service accepts CredSSP (otherwise such a header is refused, as Windows does)."""
        match = _TOKEN.match(header)
        if not match:
            raise AuthDenied("unsupported Authorization header")
        scheme, value = match.group(1).lower(), base64.b64decode(match.group(2))
        if scheme == "basic":
            return self._basic(value.decode("utf-8", "replace"), reject_all)
        if scheme == "kerberos":  # WinRM's own "Kerberos" scheme: a raw Kerberos token
            return self._negotiate(value, reject_all)
        if scheme == "credssp":
            if not credssp:
                raise AuthDenied("CredSSP is not enabled in this node's WinRM service")
            return self._credssp(value, reject_all)
        return self._negotiate(value, reject_all)

    def _basic(self, pair: str, reject_all: bool) -> AuthStep:
        user, _, password = pair.partition(":")
        if reject_all or not same_user(user, self.username) or password != self.password:
            raise AuthDenied("wrong user name or password")
        self.method, self.client_user, self._context = "basic", user, None
        return AuthStep(True)

    def _negotiate(self, token: bytes, reject_all: bool) -> AuthStep:
        if self._context is None or self._context.complete:
            self.method = "ntlm" if token.startswith(b"NTLMSSP\x00") else "negotiate"
            options = spnego.NegotiateOptions.wrapping_winrm
            self._context = spnego.server(protocol="negotiate", options=options)
        target = ticket_service(token)
        if target is not None and target.lower() != f"http/{self.kerberos_host}":
            # The node holds only its own key: a ticket for another principal does not decrypt.
            self._context = None
            raise AuthDenied(f"KRB_AP_ERR_MODIFIED: a ticket for {target}, not this node")
        try:
            out = self._context.step(token)
        except spnego.exceptions.SpnegoError as exc:
            self._context = None
            raise AuthDenied(str(exc)) from exc
        if not self._context.complete:
            return AuthStep(False, out)
        if self._context.negotiated_protocol == "kerberos":
            self.method = "kerberos"  # a service ticket for HTTP/<node> from the lab's KDC
        self.client_user = str(self._context.client_principal or self.username)
        if reject_all:
            self._context = None
            raise AuthDenied("the node rejects every credential (lab fault auth_failure)")
        return AuthStep(True, out)

    def _credssp(self, token: bytes, reject_all: bool) -> AuthStep:
        if self._context is None or self._context.complete or self.method != "credssp":
            self.method, self.delegated = "credssp", None
            self._context = spnego.server(protocol="credssp")
        try:
            out = self._context.step(token)
        except spnego.exceptions.SpnegoError as exc:
            self._context = None
            raise AuthDenied(str(exc)) from exc
        if not self._context.complete:
            if out is None:  # the acceptor ended on an error it already reported to the client
                self._context = None
                raise AuthDenied("CredSSP authentication failed")
            return AuthStep(False, out)
        credential = self._context.get_extra_info("client_credential")
        domain = getattr(credential, "domain_name", "") or ""
        user = getattr(credential, "username", "") or ""
        account = f"{domain}\\{user}" if domain else user
        self.client_user = str(self._context.client_principal or account or self.username)
        self.delegated = (account, getattr(credential, "password", "") or "")
        if reject_all:
            self._context, self.delegated = None, None
            raise AuthDenied("the node rejects every credential (lab fault auth_failure)")
        return AuthStep(True, out)

    @property
    def protocol(self) -> str:
        """The encryption protocol name of the context's bodies."""
        return CREDSSP_PROTOCOL if self.method == "credssp" else SPNEGO_PROTOCOL

    def unwrap(self, body: bytes) -> bytes:
        """Decrypt a multipart/encrypted (or CredSSP's multipart/x-multi-encrypted) WinRM body."""
        parts = re.split(rb"--\s*" + BOUNDARY.encode() + rb"(?:--)?\r\n", body)
        parts = [p for p in parts if p]
        message = b""
        for i in range(0, len(parts) - 1, 2):
            payload = parts[i + 1].replace(b"\tContent-Type: application/octet-stream\r\n", b"", 1)
            size = struct.unpack("<i", payload[:4])[0]
            header, data = payload[4 : 4 + size], payload[4 + size :]
            message += self._context.unwrap_winrm(header, data)
        return message

    def wrap(self, data: bytes) -> tuple[str, bytes]:
        """Encrypt a response body; returns (content type, body)."""
        kind = "multipart/encrypted"
        chunks = [data]
        if self.method == "credssp" and len(data) > CREDSSP_CHUNK:
            kind = "multipart/x-multi-encrypted"
            chunks = [data[i : i + CREDSSP_CHUNK] for i in range(0, len(data), CREDSSP_CHUNK)]
        body = b"".join(self._wrap_part(chunk) for chunk in chunks)
        body += f"--{BOUNDARY}--\r\n".encode()
        return f'{kind};protocol="{self.protocol}";boundary="{BOUNDARY}"', body

    def _wrap_part(self, data: bytes) -> bytes:
        result = self._context.wrap_winrm(data)
        payload = struct.pack("<i", len(result.header)) + result.header + result.data
        length = len(data) + result.padding_length
        head = (
            f"--{BOUNDARY}\r\n\tContent-Type: {self.protocol}\r\n"
            f"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length={length}\r\n"
            f"--{BOUNDARY}\r\n\tContent-Type: application/octet-stream\r\n"
        )
        return head.encode() + payload


def tls_context(folder: Path, certificate: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    """A server TLS context: the given (certificate, key) files, e.g. issued by app.lab.certs'
    test CA, or else a self-signed certificate kept under the lab folder."""
    if certificate is not None:
        cert, key = certificate
    else:
        cert, key = folder / "tls-cert.pem", folder / "tls-key.pem"
    if not (cert.exists() and key.exists()):
        _write_self_signed(cert, key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def _write_self_signed(cert_path: Path, key_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ams-lab.local")])
    now = datetime.datetime.now(datetime.UTC)
    san = x509.SubjectAlternativeName(
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(san, critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
