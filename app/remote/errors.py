"""Failure categories for remote actions, each with what to do about it and whether a retry may help."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass

import requests
from pypsrp.exceptions import AuthenticationError, WinRMTransportError, WSManFaultError
from requests_credssp.exceptions import AuthenticationException as CredSSPAuthError
from requests_credssp.exceptions import NTStatusException

UNREACHABLE = "unreachable"
AUTH_FAILED = "auth_failed"
ACCESS_DENIED = "access_denied"
SCRIPT_ERROR = "script_error"
TIMEOUT = "timeout"
CANCELLED = "cancelled"
INTERRUPTED = "interrupted"
WINRM_LIMIT = "winrm_limit"
CERTIFICATE = "certificate"

REMEDIATION = {
    UNREACHABLE: (
        "The node did not answer on its WinRM port. Check that it is powered on, that DNS resolves the "
        "name, that WinRM is enabled (winrm quickconfig / Enable-PSRemoting) and that the firewall allows "
        "TCP 5985 (HTTP) or 5986 (HTTPS) from this server."
    ),
    AUTH_FAILED: (
        "The node refused the credentials (HTTP 401). Check the user name (DOMAIN\\user or user@domain), "
        "the password, that the account is not locked, and that the chosen authentication method is "
        "enabled in the node's WinRM service configuration."
    ),
    ACCESS_DENIED: (
        "The account signed in but is not allowed to do this. It must be a local administrator on every "
        "node (or in Remote Management Users). If the script reaches another server from the node (SQL "
        "Server, Active Directory, a file share) this is the Kerberos double hop: use CredSSP, resource-"
        "based constrained delegation, or run that part from the other server."
    ),
    SCRIPT_ERROR: "The script ran and reported an error; read its error output above, fix the cause, then retry.",
    TIMEOUT: (
        "The action did not finish in time. The node may still be working: check it, then retry (the step "
        "detects what is already done)."
    ),
    CANCELLED: "The action was stopped on request. Retry when ready; the step detects what is already done.",
    INTERRUPTED: (
        "The worker running this action stopped (crash, restart or lost connection) before it reported a "
        "result. Answer the pause with Retry: the step starts with detection, so completed work is not "
        "repeated."
    ),
    WINRM_LIMIT: (
        "The node's WinRM service refused the request because it would exceed one of its configured "
        "limits (winrm get winrm/config shows them). Read the message above for which one, adjust the "
        "limit on the node or reduce what is sent to it, then retry."
    ),
}

TRANSIENT = frozenset({UNREACHABLE})
SHELL_NOT_FOUND = 2150858843  # 0x8033805B UNEXPECTED_SELECTORS: unknown shell or command
OPERATION_TIMED_OUT = 2150858793  # 0x80338029 ERROR_WSMAN_OPERATION_TIMEDOUT
INVALID_TIMEOUT_HEADER = 2150858767  # 0x8033800F: the OperationTimeout header is not valid
QUOTA_MAX_SHELLS = 2150859173  # 0x803381A5: MaxShellsPerUser (winrm/config/winrs)
QUOTA_MAX_OPERATIONS = 2150859174  # 0x803381A6: MaxConcurrentOperationsPerUser
QUOTA_MAX_SHELLS_PLUGIN = 2150859236  # 0x803381E4: the endpoint's (plugin's) own MaxShellsPerUser
SHELL_QUOTA_CODES = frozenset({QUOTA_MAX_SHELLS, QUOTA_MAX_SHELLS_PLUGIN})
REQUEST_TOO_LARGE = 413  # HTTP status WinRM answers a request above MaxEnvelopeSizekb with
SESSION_LOST_REMEDIATION = (
    "The node dropped the remote session before the script reported a result (it restarted, its "
    "WinRM service did, or the session stayed unused for longer than the node's WinRM IdleTimeout, "
    "2 hours by default), so the outcome is unknown. Wait until the node answers again, then retry: "
    "the step detects what was already done."
)
SHELL_QUOTA_REMEDIATION = (
    "This user has too many remote sessions open on the node at the same time: WinRM allows 30 "
    "shells per user by default (MaxShellsPerUser; the PowerShell endpoint's own quota is 25 on "
    "Windows Server 2012 R2 to 2019). Close the other sessions this account holds there (other "
    "wizard runs, open PowerShell windows, PSSessions left open, other tools using the same account), "
    "or wait for idle ones to expire, then retry. If that many parallel sessions are intended, raise "
    "the quota on the node: Set-Item WSMan:\\localhost\\Shell\\MaxShellsPerUser 50 (and "
    "WSMan:\\localhost\\Plugin\\microsoft.powershell\\Quotas\\MaxShellsPerUser), then "
    "Restart-Service WinRM."
)
OPERATION_QUOTA_REMEDIATION = (
    "This user has too many WinRM operations running on the node at the same time "
    "(MaxConcurrentOperationsPerUser, 1500 by default). Stop other tools or sessions using this "
    "account against the node and retry, or raise the quota with Set-Item "
    "WSMan:\\localhost\\Service\\MaxConcurrentOperationsPerUser."
)
ENVELOPE_REMEDIATION = (
    "The node refused a request larger than its WinRM MaxEnvelopeSizekb (500 KB by default). Check "
    "the value on the node with Get-Item WSMan:\\localhost\\MaxEnvelopeSizekb: if it was lowered "
    "below 500, raise it back (Set-Item WSMan:\\localhost\\MaxEnvelopeSizekb 500 or more); a proxy "
    "between this server and the node that limits request bodies gives the same answer."
)
INVALID_TIMEOUT_REMEDIATION = (
    "The node rejected the WinRM operation timeout this connection sends. It must be a positive "
    "number of seconds; the node never waits longer than its MaxTimeoutms (60 s by default) anyway. "
    "Fix the connection's operation timeout setting, then retry."
)

CREDSSP_OFF_REMEDIATION = (
    "The node's WinRM service does not accept CredSSP (Windows ships with it off). On the node, as "
    "an administrator, run Enable-WSManCredSSP -Role Server, then retry; when the installation is "
    "finished turn it off again with Disable-WSManCredSSP -Role Server. Or choose Negotiate for "
    "this node: the steps that need a second hop then run as a scheduled task with your password."
)
CREDSSP_REFUSED_REMEDIATION = (
    "The node refused the credentials sent over CredSSP. Check the user name (DOMAIN\\user), the "
    "password and that the account is not locked. CredSSP also needs the account to be allowed "
    "to log on to the node, and a domain policy may forbid delegating fresh credentials."
)

# NTSTATUS / SSPI codes a CredSSP acceptor reports in its TSRequest.errorCode (MS-CSSP 2.2.1).
CREDSSP_STATUS = {
    0x8009030C: "the logon attempt failed (SEC_E_LOGON_DENIED): wrong user name or password",
    0xC000006D: "wrong user name or password (STATUS_LOGON_FAILURE)",
    0xC000006E: "the account may not log on here (STATUS_ACCOUNT_RESTRICTION)",
    0xC0000071: "the password has expired (STATUS_PASSWORD_EXPIRED)",
    0xC0000072: "the account is disabled (STATUS_ACCOUNT_DISABLED)",
}

# The node's HTTPS certificate did not validate: what OpenSSL said -> (what it means, what to do).
CERTIFICATE_FAULTS = (
    (
        ("hostname mismatch", "doesn't match", "not valid for"),
        "its certificate was issued to another name",
        "The certificate on the node's WinRM HTTPS listener does not name the host this wizard "
        "connects to. Enter the WinRM host exactly as the certificate names it (usually the node's "
        "FQDN, not an IP address or short name), or issue the node a certificate whose Subject "
        "Alternative Names include that host, and bind it to the listener (winrm enumerate "
        "winrm/config/listener shows the thumbprint).",
    ),
    (
        ("certificate has expired", "not yet valid"),
        "its certificate has expired (or is not valid yet)",
        "Renew the certificate of the node's WinRM HTTPS listener (or check the node's and this "
        "server's clocks), then update the listener to the new thumbprint: winrm set "
        'winrm/config/Listener?Address=*+Transport=HTTPS @{CertificateThumbprint="..."}.',
    ),
    (
        (
            "unable to get local issuer",
            "self-signed certificate",
            "self signed certificate",
            "unable to verify the first certificate",
            "unknown ca",
        ),
        "its certificate comes from a CA this deployment does not trust",
        "Add the certificate of the CA that issued the node's WinRM certificate (PEM; the "
        "root and any intermediate) to this deployment's CA certificates, on the deployment's edit "
        "page. Only if you cannot, turn certificate validation off for the node: the connection "
        "is then encrypted but not authenticated, and the report says so.",
    ),
)

# ---------------------------------------------------------------------------------------------
# The second hop: one detector for the remote layer and the guides.
#
# A WinRM logon by NTLM or Kerberos holds no credentials the node can pass on, so whatever a script
# does on another machine runs there as ANONYMOUS LOGON (../shared/reference/windows-rules.md,
# section 1; Microsoft's "Making the second hop in PowerShell Remoting", PowerShell-Docs). What
# Windows prints depends on what the script reached; our reading of the sources:
# - SQL Server with Windows authentication: "Login failed for user 'NT AUTHORITY\ANONYMOUS LOGON'."
#   (error 18456; seen over WinRM in xebialabs/overthere#78 and rundeck-plugins/py-winrm-plugin#33;
#   Microsoft's support article on linked-server account mapping gives the same login for a
#   connection made without a security context).
# - The ActiveDirectory module (Get-ADDomain, Get-ADServiceAccount, Set-ADServiceAccount): "Unable to
#   contact the server. This may be because this server does not exist, it is currently down, or it
#   does not have the Active Directory Web Services running." (ADServerDownException; over PSRemoting
#   in EvotecIT/PSSharedGoods#31, cured by passing a credential). A domain controller that is really
#   down says the same; the advice for both is to run the command where the identity is whole.
# - ADSI / System.DirectoryServices: "An operations error occurred." (Crypt32/PSPKI#12 and #171,
#   whose maintainer names the double hop; zjorz/Public-AD-Scripts#35).
# - A logon with no network credentials at all: "A specified logon session does not exist"
#   (ERROR_NO_SUCH_LOGON_SESSION, 1312 = 0x80070520; PowerShell/PowerShell#10136, dataplat/dbatools
#   #10616). Register-ScheduledTask fails with the same code when policy forbids the task route.
# - File shares and the cluster cmdlets' RPC, WMI and remote registry calls to the other nodes
#   (New-Cluster, Test-Cluster, Add-ClusterGenericServiceRole, Get-ClusterLog) name no anonymous
#   logon: only a plain denial. "Access is denied" for a UNC path (Ansible's "Making the Double Hop"
#   guide; diyan/pywinrm#350, "copy-item : Access is denied"), .NET's "Access to the path ... is
#   denied.", E_ACCESSDENIED 0x80070005, "You do not have administrative privileges on the server
#   <node>" and "Requested registry access is not allowed" (Azure/AzureLocal-Supportability's
#   Test-Cluster known issues; dsccommunity/FailoverClusterDsc#185), "Access to a CIM resource was
#   not available to the client" (jborean93/pypsrp#57).
# So a bare denial counts as the second hop only from a command that reaches past the node (the
# caller says so): the text cannot tell an identity that never arrived from one without the right,
# and the second-hop advice covers both (run it with a whole identity; if it already was, the
# account lacks the right there). From a command that stays on the node it is never the second hop:
# the account lacks rights on the node itself.
SECOND_HOP_SIGNS = (
    "anonymous logon",
    "unable to contact the server",
    "an operations error occurred",
    "a specified logon session does not exist",
    "0x80070520",
    "cannot be delegated",  # the lab's and our own wording
    "double hop",
    "second hop",
)
DENIAL_SIGNS = (
    "access is denied",
    "access denied",
    "access to the path",
    "unauthorizedaccess",
    "permissiondenied",
    "0x80070005",
    "e_accessdenied",
    "you do not have administrative privileges on the server",
    "requested registry access is not allowed",
    "access to a cim resource was not available",
    "credentials supplied to the package were not recognized",
)


def is_second_hop(text: str | None, *, reaches_past_node: bool = False) -> bool:
    """Whether an error text shows that the operator's identity did not reach another machine.

    A text only a missing identity produces (SECOND_HOP_SIGNS) always counts; a bare denial
    (DENIAL_SIGNS) counts only when the command `reaches_past_node` (see the notes above)."""
    lowered = (text or "").lower()
    if any(sign in lowered for sign in SECOND_HOP_SIGNS):
        return True
    return reaches_past_node and any(sign in lowered for sign in DENIAL_SIGNS)


@dataclass
class RemoteError(Exception):
    """A classified remote failure: `category` is one of the constants above."""

    category: str
    message: str
    remediation: str = ""
    transient: bool = False
    # The library's own words (exception type and text), for a details element: never the message.
    detail: str = ""

    def __post_init__(self) -> None:
        super().__init__(self.message)
        if not self.remediation:
            self.remediation = REMEDIATION.get(self.category, "")
        self.transient = self.transient or self.category in TRANSIENT

    def __str__(self) -> str:
        return f"{self.category}: {self.message}"

    def as_dict(self) -> dict:
        """Plain data for the database and events."""
        found = {
            "category": self.category,
            "message": self.message,
            "remediation": self.remediation,
            "transient": self.transient,
        }
        if self.detail:
            found["detail"] = self.detail
        return found


KERBEROS_CHECK_ACCOUNT = (
    "Check the user name (user@domain or DOMAIN\\user) and the password, and that the account is "
    "neither locked nor disabled. Too many wrong passwords lock the account in Active Directory: "
    "do not retry with the same password."
)
KERBEROS_FIND_KDC = (
    "Check that this server can reach a domain controller on TCP 88 and that DNS answers "
    "_kerberos._tcp.<domain> SRV records here; if it cannot (a wizard host outside the domain's "
    "DNS), enter the domain controllers in the deployment's Kerberos KDCs field. Or choose NTLM for "
    "the nodes if the domain allows it."
)
# MIT krb5 error codes (signed, as krb5 and GSSAPI minor codes report them) -> (meaning, remedy).
KERBEROS_ERRORS: dict[int, tuple[str, str]] = {
    -1765328378: (
        "the domain does not know this user (KDC_ERR_C_PRINCIPAL_UNKNOWN)",
        "Check the user name: user@domain with the domain's DNS name, or DOMAIN\\user.",
    ),
    -1765328360: ("wrong password (KDC_ERR_PREAUTH_FAILED)", KERBEROS_CHECK_ACCOUNT),
    -1765328353: ("wrong password (KRB_AP_ERR_BAD_INTEGRITY)", KERBEROS_CHECK_ACCOUNT),
    -1765328366: (
        "the account is locked or disabled (KDC_ERR_CLIENT_REVOKED)",
        KERBEROS_CHECK_ACCOUNT,
    ),
    -1765328361: (
        "the password has expired (KDC_ERR_KEY_EXPIRED)",
        "Change the account's password (Ctrl+Alt+Del on a domain machine, or Set-ADAccountPassword), "
        "then enter the new one.",
    ),
    -1765328347: (
        "the clocks differ by more than 5 minutes (KRB_AP_ERR_SKEW)",
        "Kerberos refuses a ticket when the clocks of this server and the domain controller differ "
        "by more than 5 minutes. Synchronise this server's clock (NTP, e.g. against a domain "
        "controller: timedatectl / chrony), then retry.",
    ),
    -1765328228: ("no KDC of the realm answered (KRB5_KDC_UNREACH)", KERBEROS_FIND_KDC),
    -1765328230: ("no KDC of the realm could be found (KRB5_REALM_UNKNOWN)", KERBEROS_FIND_KDC),
    -1765328377: (
        "the domain has no service principal for this node (KDC_ERR_S_PRINCIPAL_UNKNOWN)",
        "Kerberos asks for a ticket to HTTP/<node FQDN>. Give the node's WinRM host as its DNS name "
        "in the domain (not an alias; an IP address is replaced by the AD computer name and the "
        "domain). Check on a domain machine with setspn -Q HTTP/<fqdn> (every domain member has "
        "it through HOST/<fqdn>). Or choose NTLM for this node.",
    ),
    -1765328370: (
        "the domain controller and this server share no encryption type (KDC_ERR_ETYPE_NOSUPP)",
        "The account needs AES keys: in Active Directory, tick 'This account supports Kerberos AES "
        "256 bit encryption' and set the password again.",
    ),
}
KERBEROS_NETWORK = frozenset({-1765328228})  # a KDC that does not answer: retrying may help
_MINOR = re.compile(r"Minor \((\d+)\)")


def kerberos_code(exc: BaseException) -> int | None:
    """The MIT krb5 error code of a krb5 or GSSAPI (pyspnego) failure, signed."""
    code = getattr(exc, "err_code", None)
    if isinstance(code, int):
        return code
    for value in _MINOR.findall(str(exc)):
        number = int(value)
        return number - (1 << 32) if number >= 1 << 31 else number
    return None


def _classify_kerberos(exc: BaseException, where: str) -> RemoteError | None:
    code = kerberos_code(exc)
    if code not in KERBEROS_ERRORS:
        return None
    meaning, remedy = KERBEROS_ERRORS[code]
    category = UNREACHABLE if code in KERBEROS_NETWORK else AUTH_FAILED
    return RemoteError(category, f"Kerberos failed{where}: {meaning}.", remedy)


def make(category: str, message: str) -> RemoteError:
    """A RemoteError with the standard remediation for its category."""
    return RemoteError(category, message)


def mentions_access_denied(text: str) -> str | None:
    """ACCESS_DENIED (whose remediation names the second hop) when an error text is a denial or
    a sign of the second hop, else None."""
    return ACCESS_DENIED if is_second_hop(text, reaches_past_node=True) else None


def unreachable_remediation(port: int | None, transport: str = "") -> str:
    """What to check when a node does not answer, naming the port this deployment uses for it."""
    if not port:
        return REMEDIATION[UNREACHABLE]
    kind = f" ({transport.upper()})" if transport else ""
    return (
        f"The node did not answer on its WinRM port: TCP {port}{kind}, as this deployment "
        "configures the node. Check that it is powered on, that DNS resolves the name, that "
        "WinRM is enabled and listens on that port (winrm enumerate winrm/config/listener; "
        "Enable-PSRemoting) and that the firewall allows TCP "
        f"{port} from this server. If the listener uses another port, correct the node's port "
        "in the deployment."
    )


def _unreachable(
    exc: BaseException, host: str, port: int | None, transport: str, prefix: str = ""
) -> RemoteError:
    """Cannot reach the node: host and port in the message, the library's text in `detail`."""
    at = f"{host}:{port}" if host and port else host
    where = f" ({at})" if at else ""
    return RemoteError(
        UNREACHABLE,
        f"Cannot reach the node{where}: {prefix}{_short(exc, 'the connection failed')}",
        unreachable_remediation(port, transport),
        detail=raw_detail(exc),
    )


def raw_detail(exc: BaseException) -> str:
    """The exception as the library raised it, bounded, for a details element."""
    return f"{type(exc).__name__}: {exc}"[:2000]


def classify(
    exc: BaseException, *, host: str = "", port: int | None = None, transport: str = ""
) -> RemoteError:
    """Map an exception raised while talking to a node onto a category. `port` and `transport`
    (the node's configured WinRM endpoint) go into the messages of an unreachable node."""
    if isinstance(exc, RemoteError):
        return exc
    where = f" ({host})" if host else ""
    if type(exc).__module__.startswith(("krb5", "gssapi", "spnego")):
        translated = _classify_kerberos(exc, where)
        if translated is not None:
            return translated
    if isinstance(exc, AuthenticationError):
        return make(AUTH_FAILED, f"Authentication failed{where}: {exc}")
    if isinstance(exc, (CredSSPAuthError, NTStatusException)):
        return _classify_credssp(exc, where)
    if isinstance(exc, WinRMTransportError):
        return _classify_http(exc, where)
    if isinstance(exc, WSManFaultError):
        return _classify_fault(exc, where)
    if isinstance(exc, requests.exceptions.SSLError):
        return _classify_tls(exc, where, host, port, transport)
    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
        return _unreachable(exc, host, port, transport)
    if isinstance(exc, (socket.gaierror, ConnectionError, TimeoutError, OSError)):
        return _unreachable(exc, host, port, transport)
    return make(SCRIPT_ERROR, f"Unexpected failure{where}: {type(exc).__name__}: {_short(exc)}")


def _classify_credssp(exc: Exception, where: str) -> RemoteError:
    """requests-credssp's own errors: the node does not offer CredSSP, or refused the logon."""
    text = str(exc)
    if isinstance(exc, NTStatusException):
        reason = CREDSSP_STATUS.get(exc.status, f"status 0x{exc.status:08X}")
        return RemoteError(
            AUTH_FAILED,
            f"Authentication failed{where} (CredSSP): {reason}",
            CREDSSP_REFUSED_REMEDIATION,
        )
    if "did not response CredSSP" in text:  # sic: requests-credssp's wording
        return RemoteError(
            AUTH_FAILED,
            f"CredSSP is not enabled on the node{where}: its WinRM service offers only "
            f"{text.split('actual:', 1)[-1].strip() or 'other methods'}",
            CREDSSP_OFF_REMEDIATION,
        )
    return RemoteError(
        AUTH_FAILED,
        f"Authentication failed{where} (CredSSP): {_short(exc)}",
        CREDSSP_REFUSED_REMEDIATION,
    )


def _classify_tls(
    exc: requests.exceptions.SSLError,
    where: str,
    host: str = "",
    port: int | None = None,
    transport: str = "",
) -> RemoteError:
    """A TLS failure: a certificate that did not validate gets its own message; anything else
    (protocol versions, a reset during the handshake) stays "cannot reach"."""
    text = str(exc)
    lowered = text.lower()
    for hints, meaning, remediation in CERTIFICATE_FAULTS:
        if any(h in lowered for h in hints):
            return RemoteError(
                CERTIFICATE,
                f"The node{where} failed certificate validation: {meaning}.",
                remediation,
            )
    return _unreachable(exc, host, port, transport, "TLS failed: ")


def _classify_http(exc: WinRMTransportError, where: str) -> RemoteError:
    code = getattr(exc, "code", None)
    if code == 401:
        return make(AUTH_FAILED, f"Authentication failed{where} (HTTP 401)")
    if code == 403:
        return make(ACCESS_DENIED, f"Access denied{where} (HTTP 403)")
    if code == REQUEST_TOO_LARGE:
        return RemoteError(
            WINRM_LIMIT,
            f"The node refused a request that exceeds its WinRM envelope size limit{where} (HTTP 413)",
            ENVELOPE_REMEDIATION,
        )
    if code in (502, 503, 504):
        return make(UNREACHABLE, f"WinRM unavailable{where} (HTTP {code})")
    text = getattr(exc, "response_text", "") or ""
    category = mentions_access_denied(text) or SCRIPT_ERROR
    return make(category, f"WinRM error{where} (HTTP {code}): {text[:500]}")


def _classify_fault(exc: WSManFaultError, where: str) -> RemoteError:
    reason = str(exc.reason or exc.message or "").strip()
    if exc.code == 5 or mentions_access_denied(reason):
        return make(ACCESS_DENIED, f"Access denied{where}: {reason[:500]}")
    if exc.code == OPERATION_TIMED_OUT:
        return make(
            TIMEOUT,
            f"WinRM operation timed out{where}: the node did not answer within the operation timeout",
        )
    if exc.code == SHELL_NOT_FOUND:
        what = "script's command" if "command identifier" in reason.lower() else "session"
        return RemoteError(
            INTERRUPTED,
            f"The node no longer knows this {what}{where}; it was lost while the script ran: {reason[:300]}",
            SESSION_LOST_REMEDIATION,
        )
    if exc.code in SHELL_QUOTA_CODES:
        return RemoteError(
            WINRM_LIMIT,
            f"The node refused to open another remote session{where}: too many parallel sessions for "
            f"this user ({reason[:300]})",
            SHELL_QUOTA_REMEDIATION,
        )
    if exc.code == QUOTA_MAX_OPERATIONS:
        return RemoteError(
            WINRM_LIMIT,
            f"The node refused the request{where}: too many parallel WinRM operations for this user "
            f"({reason[:300]})",
            OPERATION_QUOTA_REMEDIATION,
        )
    if exc.code == INVALID_TIMEOUT_HEADER and "timeout" in reason.lower():
        return RemoteError(
            WINRM_LIMIT,
            f"The node rejected the request's operation timeout{where}: {reason[:300]}",
            INVALID_TIMEOUT_REMEDIATION,
        )
    return make(SCRIPT_ERROR, f"WinRM fault {exc.code}{where}: {reason[:500]}")


def _short(exc: BaseException, unknown: str | None = None) -> str:
    """The cause in a few words; `unknown` (when given) instead of the raw text for anything
    else, which then belongs in RemoteError.detail."""
    text = str(exc)
    if "Connection refused" in text:
        return "connection refused"
    if "Name or service not known" in text or "getaddrinfo" in text or "NameResolution" in text:
        return "name does not resolve (DNS)"
    if "timed out" in text.lower():
        return "connection timed out"
    if "No route to host" in text or "Network is unreachable" in text:
        return "no route to the host"
    if "Connection reset" in text or "RemoteDisconnected" in text or "Connection aborted" in text:
        return "the connection was closed by the node or a device in between"
    return unknown if unknown is not None else text[:300]
