"""Kerberos for a wizard host that is not joined to the domain: the realm, its KDCs, the
principal and the service name, and a private credential cache per pool.

- The realm is the deployment's AD domain in capitals. Its KDCs are the deployment's own list
  (`host[:port]`, comma separated) or, when the list is empty, DNS SRV records
  (`_kerberos._tcp.<domain>`), as a domain-joined Windows machine finds them.
- This process keeps one Kerberos configuration file of its own (mode 0600 in a private folder),
  naming every realm it has been given KDCs for, with the realm of the pool being opened as the
  default realm, and puts it first in KRB5_CONFIG, ahead of the machine's own configuration,
  which stays in effect for everything else. That matters for Negotiate and CredSSP too, which
  try Kerberos first: Debian's stock /etc/krb5.conf names ATHENA.MIT.EDU as the default realm,
  and a bare user name would otherwise send this server to kerberos.mit.edu.
- DNS discovery of KDCs can be turned off (setting KERBEROS_DNS) where the domain's records are
  not in this server's DNS; the deployment's KDC list is then the only source.
- `DOMAIN\\user` and `user@domain` become `user@REALM`; a plain `user` gets the deployment's
  realm.
- The service principal is `HTTP/<node FQDN>`: Windows maps HTTP to the computer's HOST
  principal, so every domain member has it. When the WinRM host is an IP address (no SPN exists
  for an address) the FQDN is the node's AD computer name in the deployment's domain.
- With a password, pyspnego obtains the ticket into a MEMORY cache bound to the security
  context; the pool opening also points KRB5CCNAME at a FILE cache in a private folder, so
  nothing is ever written to the user's default cache where another deployment could read it,
  and that folder is removed when the opening ends.

KRB5CCNAME and KRB5_CONFIG are process-wide, so Kerberos pool openings in one worker process are
serialised (the actions that then run on the pools are not)."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator

SERVICE = "HTTP"
KERBEROS_AUTHS = frozenset({"kerberos"})
# Methods that may use Kerberos: Negotiate tries it first, and so does CredSSP for its inner logon.
MAY_USE_KERBEROS = frozenset({"kerberos", "negotiate", "credssp"})

_LOCK = threading.RLock()
_REALMS: dict[str, tuple[str, ...]] = {}
_FOLDER: str | None = None


def realm_of(domain_fqdn: str) -> str:
    """An AD domain's Kerberos realm: its DNS name in capitals."""
    return domain_fqdn.strip().rstrip(".").upper()


def principal(username: str, realm: str) -> str:
    """`DOMAIN\\user`, `user@domain` or `user` as the Kerberos principal `user@REALM`.

    A NetBIOS domain (`CORP\\user`) cannot be resolved to a realm from here, so it is replaced by
    the deployment's realm; a UPN suffix that is the deployment's domain is capitalised; any
    other UPN suffix is kept as given (an account of another realm of the forest)."""
    name = username.strip()
    if "\\" in name:
        name = name.split("\\", 1)[1]
        return f"{name}@{realm}"
    if "@" in name:
        user, suffix = name.rsplit("@", 1)
        return f"{user}@{suffix.upper()}"
    return f"{name}@{realm}"


def service_host(host: str, node_name: str | None, domain_fqdn: str | None) -> str:
    """The host part of the node's service principal (see module doc)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host.lower()
    if node_name and domain_fqdn:
        return f"{node_name}.{domain_fqdn}".lower()
    return host


def parse_kdcs(text: str | None) -> tuple[str, ...]:
    """A deployment's stored KDC list ("host:port, host:port", app.validators.kdc_list) as a tuple."""
    return tuple(item.strip() for item in (text or "").split(",") if item.strip())


def _write_config(folder: str, realm: str, dns: bool) -> str:
    """The configuration file naming every realm this process knows KDCs for, with `realm` as
    the default (a user name without a realm, `DOMAIN\\user` inside Negotiate or CredSSP, is
    looked up there, never in the machine's own default realm)."""
    lines = [
        "[libdefaults]",
        f"  default_realm = {realm}",
        f"  dns_lookup_kdc = {'true' if dns else 'false'}",
        "  dns_lookup_realm = false",
        "  rdns = false",
        "  dns_canonicalize_hostname = fallback",
        "  udp_preference_limit = 1",  # TCP: AD tickets with group lists rarely fit a UDP datagram
        "[realms]",
    ]
    for realm, kdcs in sorted(_REALMS.items()):
        lines.append(f"  {realm} = {{")
        lines += [f"    kdc = {kdc}" for kdc in kdcs]
        # Every AD domain controller is writable: naming them as primaries too stops MIT asking
        # DNS for _kerberos-master records after each ticket (5 s stalls where DNS is slow).
        lines += [f"    {name} = {kdc}" for kdc in kdcs for name in ("primary_kdc", "master_kdc")]
        lines.append("  }")
    path = os.path.join(folder, "krb5.conf")
    temp = f"{path}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    os.replace(temp, path)
    return path


def _base_config() -> str:
    """The machine's own configuration list, without this process's file."""
    current = os.environ.get("KRB5_CONFIG", "/etc/krb5.conf")
    ours = os.path.join(_FOLDER, "krb5.conf") if _FOLDER else None
    return ":".join(p for p in current.split(":") if p and p != ours)


def configure(realm: str, kdcs: tuple[str, ...], dns: bool = True) -> None:
    """Make `realm`'s KDCs known to this process (none: DNS SRV records find them, unless `dns`
    is off) and make it the default realm."""
    global _FOLDER
    with _LOCK:
        if _FOLDER is None or not os.path.isdir(_FOLDER):
            _FOLDER = tempfile.mkdtemp(prefix="amsw-krb5conf-")
        base = _base_config()
        if kdcs:
            _REALMS[realm] = kdcs
        else:
            _REALMS.pop(realm, None)
        path = _write_config(_FOLDER, realm, dns)
        os.environ["KRB5_CONFIG"] = f"{path}:{base}" if base else path


@contextlib.contextmanager
def opening(realm: str, kdcs: tuple[str, ...], dns: bool = True) -> Iterator[None]:
    """Hold the process-wide Kerberos settings for one pool opening (see module doc)."""
    folder = tempfile.mkdtemp(prefix="amsw-krb5-")
    with _LOCK:
        configure(realm, kdcs, dns)
        previous = os.environ.get("KRB5CCNAME")
        os.environ["KRB5CCNAME"] = f"FILE:{os.path.join(folder, 'ccache')}"
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop("KRB5CCNAME", None)
            else:
                os.environ["KRB5CCNAME"] = previous
            shutil.rmtree(folder, ignore_errors=True)
