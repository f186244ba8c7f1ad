"""Failure categories for remote actions, each with what to do about it and whether a retry may help."""

from __future__ import annotations

import socket
from dataclasses import dataclass

import requests
from pypsrp.exceptions import AuthenticationError, WinRMTransportError, WSManFaultError

UNREACHABLE = "unreachable"
AUTH_FAILED = "auth_failed"
ACCESS_DENIED = "access_denied"
SCRIPT_ERROR = "script_error"
TIMEOUT = "timeout"
CANCELLED = "cancelled"
INTERRUPTED = "interrupted"

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
        "result. Resume the step: it starts with detection, so completed work is not repeated."
    ),
}

TRANSIENT = frozenset({UNREACHABLE})
SHELL_NOT_FOUND = 2150858843  # 0x8033805B: the node dropped the shell (restart, WinRM restart)
SESSION_LOST_REMEDIATION = (
    "The node dropped the remote session before the script reported a result (it restarted, or its "
    "WinRM service did), so the outcome is unknown. Wait until the node answers again, then retry: "
    "the step detects what was already done."
)

_DOUBLE_HOP_HINTS = (
    "double hop",
    "network logon",
    "anonymous logon",
    "nt authority\\anonymous",
    "credentials supplied to the package were not recognized",
    "login failed for user 'nt authority",
    "delegation",
)
_ACCESS_HINTS = (
    "access is denied",
    "access denied",
    "unauthorizedaccess",
    "permissiondenied",
    "0x80070005",
)


@dataclass
class RemoteError(Exception):
    """A classified remote failure: `category` is one of the constants above."""

    category: str
    message: str
    remediation: str = ""
    transient: bool = False

    def __post_init__(self) -> None:
        super().__init__(self.message)
        if not self.remediation:
            self.remediation = REMEDIATION.get(self.category, "")
        self.transient = self.transient or self.category in TRANSIENT

    def __str__(self) -> str:
        return f"{self.category}: {self.message}"

    def as_dict(self) -> dict:
        """Plain data for the database and events."""
        return {
            "category": self.category,
            "message": self.message,
            "remediation": self.remediation,
            "transient": self.transient,
        }


def make(category: str, message: str) -> RemoteError:
    """A RemoteError with the standard remediation for its category."""
    return RemoteError(category, message)


def mentions_access_denied(text: str) -> str | None:
    """ACCESS_DENIED (with the double-hop hint) when an error text says so, else None."""
    lowered = (text or "").lower()
    if any(h in lowered for h in _ACCESS_HINTS + _DOUBLE_HOP_HINTS):
        return ACCESS_DENIED
    return None


def classify(exc: BaseException, *, host: str = "") -> RemoteError:
    """Map an exception raised while talking to a node onto a category."""
    if isinstance(exc, RemoteError):
        return exc
    where = f" ({host})" if host else ""
    if isinstance(exc, AuthenticationError):
        return make(AUTH_FAILED, f"Authentication failed{where}: {exc}")
    if isinstance(exc, WinRMTransportError):
        return _classify_http(exc, where)
    if isinstance(exc, WSManFaultError):
        return _classify_fault(exc, where)
    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
        return make(UNREACHABLE, f"Cannot reach the node{where}: {_short(exc)}")
    if isinstance(exc, (socket.gaierror, ConnectionError, TimeoutError, OSError)):
        return make(UNREACHABLE, f"Cannot reach the node{where}: {_short(exc)}")
    return make(SCRIPT_ERROR, f"Unexpected failure{where}: {type(exc).__name__}: {_short(exc)}")


def _classify_http(exc: WinRMTransportError, where: str) -> RemoteError:
    code = getattr(exc, "code", None)
    if code == 401:
        return make(AUTH_FAILED, f"Authentication failed{where} (HTTP 401)")
    if code == 403:
        return make(ACCESS_DENIED, f"Access denied{where} (HTTP 403)")
    if code in (502, 503, 504):
        return make(UNREACHABLE, f"WinRM unavailable{where} (HTTP {code})")
    text = getattr(exc, "response_text", "") or ""
    category = mentions_access_denied(text) or SCRIPT_ERROR
    return make(category, f"WinRM error{where} (HTTP {code}): {text[:500]}")


def _classify_fault(exc: WSManFaultError, where: str) -> RemoteError:
    reason = str(exc.reason or exc.message or "").strip()
    if exc.code == 5 or mentions_access_denied(reason):
        return make(ACCESS_DENIED, f"Access denied{where}: {reason[:500]}")
    if exc.code == 2150858793:
        return make(TIMEOUT, f"WinRM operation timed out{where}")
    if exc.code == SHELL_NOT_FOUND:
        return RemoteError(
            INTERRUPTED,
            f"The session to the node was lost while the script ran{where}: {reason[:300]}",
            SESSION_LOST_REMEDIATION,
        )
    return make(SCRIPT_ERROR, f"WinRM fault {exc.code}{where}: {reason[:500]}")


def _short(exc: BaseException) -> str:
    text = str(exc)
    if "Connection refused" in text:
        return "connection refused"
    if "Name or service not known" in text or "getaddrinfo" in text or "NameResolution" in text:
        return "name does not resolve (DNS)"
    if "timed out" in text.lower():
        return "connection timed out"
    return text[:300]
