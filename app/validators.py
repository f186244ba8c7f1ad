"""Input rules shared by forms and the API. Each returns the normalised value or raises ValueError
with a message an operator can act on. Nothing here knows about Flask."""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

_NETBIOS_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,13}[A-Za-z0-9])?$")
_FQDN_LABEL_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_HOST_LABEL_RE = _FQDN_LABEL_RE
_GMSA_RE = re.compile(
    r"^(?P<domain>[A-Za-z0-9][A-Za-z0-9.-]{0,254})\\(?P<name>[A-Za-z0-9_.-]{1,15})\$$"
)
_VERSION_RE = re.compile(r"^(\d{1,5})\.(\d{1,5})\.(\d{1,6})(?:\.(\d{1,6}))?$")
_UNC_RE = re.compile(
    r"^\\\\(?P<server>[A-Za-z0-9][A-Za-z0-9.-]{0,254})\\(?P<share>[^\\/:*?\"<>|]{1,80})(?:\\[^\\/:*?\"<>|]{1,255})*$"
)
MAX_TEXT = 4096
# Characters that make text display in another order than it is stored (Trojan Source): the
# embeddings and overrides U+202A-U+202E, the isolates U+2066-U+2069 and the implicit marks.
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
_SEPARATORS = frozenset("\u2028\u2029")  # line and paragraph separators: never typed in a form


def _allowed_break(value: str, index: int) -> bool:
    """In multi-line text: a tab, a line feed, or a carriage return that starts a CR LF."""
    ch = value[index]
    return ch in "\t\n" or (ch == "\r" and value[index + 1 : index + 2] == "\n")


def refused_character(value: str, multiline: bool = False) -> tuple[str, str] | None:
    """(character, kind) of the first character free text may not hold, or None.

    Refused: control characters (NUL included; tab, LF and CR LF allowed in multi-line text),
    unpaired surrogates, line/paragraph separators and bidirectional controls."""
    for index, ch in enumerate(value):
        if ch in BIDI_CONTROLS:
            return ch, "bidi"
        category = unicodedata.category(ch)
        if category == "Cc" and not (multiline and _allowed_break(value, index)):
            return ch, "control"
        if category == "Cs" or ch in _SEPARATORS:
            return ch, "control"
    return None


def check_characters(value: str, what: str, multiline: bool = False) -> str:
    """The one character rule for every free text (names, user names, notes, reasons, search)."""
    found = refused_character(value, multiline)
    if found is None:
        return value
    ch, kind = found
    if kind == "bidi":
        raise ValueError(
            f"{what} contains a bidirectional text control (U+{ord(ch):04X}), which makes text "
            "display in another order than it was typed; remove it."
        )
    raise ValueError(
        f"{what} contains a control character (U+{ord(ch):04X}), which is not allowed here; remove it."
    )


def free_text(
    value: str | None, what: str, limit: int = 200, *, multiline: bool = False, required=False
) -> str:
    """Free text (a note, a reason, a search term): the character rule, bounded, stripped."""
    value = check_characters((value or "").strip(), what, multiline)
    if len(value) > limit:
        raise ValueError(f"{what} is too long ({len(value)} characters, at most {limit}).")
    if required and not value:
        raise ValueError(f"{what} is required.")
    return value


def secret(value: str | None, what: str, limit: int = 1024) -> str:
    """A password or key: kept exactly as typed (never stripped or shown), no control characters."""
    value = value or ""
    if len(value) > limit:
        raise ValueError(f"{what} is too long ({len(value)} characters, at most {limit}).")
    for ch in value:
        if unicodedata.category(ch) in {"Cc", "Cs"}:
            raise ValueError(
                f"{what} contains a control character (U+{ord(ch):04X}), which cannot be used; "
                "remove it."
            )
    return value


def _printable(value: str, what: str, limit: int = MAX_TEXT) -> str:
    """Reject control characters, NUL and oversize values before any other rule."""
    if len(value) > limit:
        raise ValueError(f"{what} is too long ({len(value)} characters, at most {limit}).")
    check_characters(value, what)
    for ch in value:
        if unicodedata.category(ch) in {"Cc", "Cf", "Cs", "Co", "Cn"}:
            raise ValueError(f"{what} contains a control or invisible character ({ord(ch):#06x}).")
    return value


def _ascii(value: str, what: str) -> None:
    """Windows names must be plain ASCII; look-alike letters from other scripts are refused."""
    bad = next((ch for ch in value if ord(ch) > 127), None)
    if bad is not None:
        raise ValueError(
            f"{what} contains the non-ASCII character '{bad}' (U+{ord(bad):04X}); "
            "use plain letters A-Z, digits and hyphens."
        )


def netbios_name(value: str, what: str = "Name") -> str:
    """A NetBIOS computer name: at most 15 characters, a valid DNS label, not all digits."""
    value = _printable((value or "").strip(), what, 64)
    if not value:
        raise ValueError(f"{what} is required.")
    _ascii(value, what)
    if len(value) > 15:
        raise ValueError(f"{what} '{value}' has {len(value)} characters; NetBIOS names allow 15.")
    if not _NETBIOS_RE.match(value):
        raise ValueError(
            f"{what} '{value}' may contain only letters, digits and hyphens, "
            "and must not start or end with a hyphen."
        )
    if value.isdigit():
        raise ValueError(f"{what} '{value}' cannot be all digits.")
    return value.upper()


def node_name(value: str, what: str = "Computer name") -> str:
    """A cluster node's AD computer name. A DNS name typed here (AMS1.corp.example.com) is the
    usual mix-up with the WinRM host, and gets a message saying where each part goes."""
    text = (value or "").strip()
    if "." in text and all(_FQDN_LABEL_RE.match(label) for label in text.rstrip(".").split(".")):
        short = text.split(".", 1)[0].upper()
        raise ValueError(
            f"{what} '{text}' is a DNS name: enter {short} here (the computer name) and "
            f"{text.lower()} as the WinRM host."
        )
    return netbios_name(value, what)


def node_names(values: list[str]) -> list[str]:
    """At least two distinct, valid node names."""
    names = [node_name(v, f"Node {i + 1} name") for i, v in enumerate(values)]
    if len(names) < 2:
        raise ValueError("High availability needs at least 2 nodes.")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"Node name {name} appears more than once.")
        seen.add(name)
    return names


def domain_fqdn(value: str) -> str:
    """An Active Directory DNS domain such as corp.example.com."""
    value = _printable((value or "").strip().rstrip("."), "Domain", 255)
    if not value:
        raise ValueError("Domain is required.")
    _ascii(value, "Domain")
    labels = value.split(".")
    if len(labels) < 2:
        raise ValueError(
            f"Domain '{value}' must be a fully qualified name such as corp.example.com."
        )
    for label in labels:
        if not _FQDN_LABEL_RE.match(label):
            raise ValueError(f"Domain label '{label}' is not a valid DNS label.")
    return value.lower()


def hostname(value: str) -> str:
    """A DNS host name, FQDN or IP address to reach WinRM on."""
    value = _printable((value or "").strip(), "Host", 255)
    if not value:
        raise ValueError("Host is required.")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    _ascii(value, "Host")
    for label in value.rstrip(".").split("."):
        if not _HOST_LABEL_RE.match(label):
            raise ValueError(f"Host '{value}' is not a valid host name or IP address.")
    return value.lower()


MAX_KDCS = 10


def kdc_list(value: str | None) -> str | None:
    """Kerberos KDCs as `host[:port]`, separated by commas or spaces; normalised to
    "host:port, host:port" (port 88 when not given), or None when empty."""
    items = [i for i in re.split(r"[,\s;]+", (value or "").strip()) if i]
    if not items:
        return None
    if len(items) > MAX_KDCS:
        raise ValueError(f"At most {MAX_KDCS} KDCs.")
    found = []
    for item in items:
        host, _, number = item.partition(":") if item.count(":") == 1 else (item, "", "")
        if item.count(":") > 1 or item.startswith("["):
            raise ValueError(
                f"KDC '{item}': give a host name or IPv4 address (IPv6: use its name)."
            )
        try:
            found.append(f"{hostname(host)}:{port(number) if number else 88}")
        except ValueError as error:
            raise ValueError(f"KDC '{item}': {error}") from None
    return ", ".join(dict.fromkeys(found))


def port(value: int | str) -> int:
    """A TCP port number."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError("Port must be a whole number.") from None
    if not 1 <= number <= 65535:
        raise ValueError(f"Port {number} is outside 1-65535.")
    return number


APIPA = ipaddress.ip_network("169.254.0.0/16")
LIMITED_BROADCAST = ipaddress.ip_address("255.255.255.255")


def static_address(
    value: str,
    taken: set[str] | None = None,
    what: str = "Address",
    networks: list | None = None,
) -> str:
    """A unicast IPv4 or IPv6 address a cluster can bring online: not multicast, loopback,
    unspecified, automatic private (APIPA), broadcast or link-local, not already a node's, and,
    given the nodes' networks (ipaddress networks), not their network or broadcast address."""
    value = _printable((value or "").strip(), what, 64)
    if not value:
        raise ValueError(f"{what} is required.")
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{what} '{value}' is not a valid IPv4 or IPv6 address.") from None
    if address.version == 6 and address.ipv4_mapped is not None:
        raise ValueError(f"{what} {address}: enter the IPv4 address {address.ipv4_mapped} itself.")
    refused = _special_address(address)
    if refused:
        raise ValueError(f"{what} {address} is {refused}")
    if str(address) in (taken or set()):
        raise ValueError(f"{what} {address} is already used by a node; choose a free address.")
    for network in networks or ():
        edge = _network_edge(address, network)
        if edge:
            raise ValueError(f"{what} {address} is {edge}")
    return str(address)


def _special_address(address) -> str | None:
    """Why an address can never be a cluster's static address, or None."""
    if address.is_unspecified:
        return "the unspecified address; enter the address the cluster will answer on."
    if address.is_loopback:
        return "a loopback address, which never leaves the machine; use an address on the nodes' network."
    if address.is_multicast:
        return "a multicast address; a cluster address must be a unicast address on the nodes' network."
    if address.version == 4 and address in APIPA:
        return (
            "an automatic private (APIPA) address: Windows gives itself a 169.254.x.x address "
            "when DHCP fails, and Failover Clustering does not use them. Enter a static address on "
            "the nodes' network."
        )
    if address == LIMITED_BROADCAST:
        return "the broadcast address; enter a host address on the nodes' network."
    if address.version == 6 and address.is_link_local:
        return (
            "a link-local address (fe80::/10), valid on one network link only; enter a global or "
            "unique local address (or an IPv4 address) on the nodes' network."
        )
    if address.version == 4 and address.is_reserved:
        return "in the reserved range 240.0.0.0/4, which hosts cannot use."
    return None


def _network_edge(address, network) -> str | None:
    """`address` is the network or the broadcast address of `network` (a subnet of the nodes)."""
    if address.version != network.version or network.num_addresses <= 2:
        return None
    first, last = network.network_address + 1, network.broadcast_address - (network.version == 4)
    usable = f"choose an address from {first} to {last}."
    if address == network.network_address:
        return f"the network address of the nodes' subnet {network}; {usable}"
    if network.version == 4 and address == network.broadcast_address:
        return f"the broadcast address of the nodes' subnet {network}; {usable}"
    return None


def node_network(address: str, prefix_length: int | None):
    """The subnet of a node's address (ipaddress network), or None when the prefix is unknown."""
    if prefix_length is None:
        return None
    try:
        return ipaddress.ip_interface(f"{address}/{int(prefix_length)}").network
    except (TypeError, ValueError):
        return None


def address_problem(
    value: str,
    what: str,
    node_addresses: dict[str, list[tuple[str, int | None]]],
    others: dict[str, str] | None = None,
) -> str | None:
    """Why a cluster or access point address clashes with what the nodes reported, or None.

    node_addresses: per node name, the (address, prefix length) pairs its connection probe found.
    others: addresses the deployment already gave out, by what they are ("the cluster address").
    Refused: a node's own address, another entry's address, the network or broadcast address of a
    node's subnet, and an address outside every node subnet of its IP version (Windows brings a
    cluster address online only on a network the nodes are on)."""
    try:
        static_address(value, what=what)
    except ValueError as error:
        return str(error)
    address = ipaddress.ip_address(value.strip())
    for label, other in (others or {}).items():
        if other and ipaddress.ip_address(other) == address:
            return f"{what} {address} is already {label}; each needs an address of its own."
    networks: dict = {}
    for node, pairs in node_addresses.items():
        for raw, prefix in pairs:
            try:
                own = ipaddress.ip_address(raw)
            except ValueError:
                continue
            if own == address:
                return (
                    f"{what} {address} is the address of node {node}; the cluster needs an "
                    "address no machine uses yet."
                )
            network = node_network(raw, prefix)
            if network is not None and network.version == address.version:
                networks.setdefault(network, node)
    for network in networks:
        edge = _network_edge(address, network)
        if edge:
            return f"{what} {address} is {edge}"
    if networks and not any(address in network for network in networks):
        listed = ", ".join(f"{n} ({node})" for n, node in networks.items())
        return (
            f"{what} {address} is not in a subnet of the nodes: {listed}. Windows brings the "
            "address online only on a network a node is connected to; choose a free address there."
        )
    return None


def distinct_endpoints(rows: list[tuple[str, str, int]]) -> None:
    """Each node reached at its own WinRM host and port: (name, host, port) rows."""
    seen: dict[tuple[str, int], str] = {}
    for name, host, number in rows:
        key = ((host or "").strip().rstrip(".").lower(), int(number or 0))
        if not key[0]:
            continue
        if key in seen:
            raise ValueError(
                f"{seen[key]} and {name} have the same WinRM host and port ({key[0]}:{key[1]}): "
                "each node needs its own host (or, behind a port forward, its own port)."
            )
        seen[key] = name


_STORAGE_ACCOUNT_RE = re.compile(r"^[a-z0-9]{3,24}$")


def storage_account_name(value: str) -> str:
    """An Azure storage account name: 3 to 24 characters, lowercase letters and digits only."""
    value = _printable((value or "").strip(), "Storage account name", 64)
    if not value:
        raise ValueError("Storage account name is required.")
    if _STORAGE_ACCOUNT_RE.match(value):
        return value
    if not 3 <= len(value) <= 24:
        raise ValueError(
            f"Storage account name '{value}' has {len(value)} characters; Azure allows 3 to 24."
        )
    if _STORAGE_ACCOUNT_RE.match(value.lower()):
        raise ValueError(
            f"Storage account name '{value}' has capital letters; Azure names are lowercase: "
            f"{value.lower()}."
        )
    raise ValueError(
        f"Storage account name '{value}' may contain only lowercase letters and digits "
        "(no hyphens, dots or spaces), as in Azure."
    )


def gmsa(value: str) -> str:
    """A group managed service account as DOMAIN\\name$ (the sAMAccountName ends in $)."""
    value = _printable((value or "").strip(), "Service account", 300)
    if not value:
        raise ValueError("Service account is required.")
    _ascii(value, "Service account")
    match = _GMSA_RE.match(value)
    if not match:
        raise ValueError(
            f"Service account '{value}' must look like DOMAIN\\name$ "
            "(a group managed service account, at most 15 characters before the $)."
        )
    return f"{match['domain'].upper()}\\{match['name']}$"


_SQL_KEYS = {
    "server": "server",
    "data source": "server",
    "address": "server",
    "addr": "server",
    "network address": "server",
    "database": "database",
    "initial catalog": "database",
    "integrated security": "integrated",
    "trusted_connection": "integrated",
    "user id": "user",
    "uid": "user",
    "password": "password",
    "pwd": "password",
}


def parse_connection_string(value: str) -> dict[str, str]:
    """Split a SQL Server connection string into its keywords (lower-case keys)."""
    parts: dict[str, str] = {}
    for chunk in value.split(";"):
        if not chunk.strip():
            continue
        if "=" not in chunk:
            raise ValueError(f"Connection string part '{chunk.strip()}' is not keyword=value.")
        key, _, val = chunk.partition("=")
        parts[key.strip().lower()] = val.strip()
    return parts


def sql_connection_string(value: str) -> str:
    """A SQL Server connection string that a cluster can share: no Express, no LocalDB, no passwords."""
    value = _printable((value or "").strip(), "Connection string", 1024)
    if not value:
        raise ValueError("Connection string is required.")
    parts = parse_connection_string(value)
    known = {_SQL_KEYS[k]: v for k, v in parts.items() if k in _SQL_KEYS}
    server = known.get("server", "")
    if not server:
        raise ValueError("Connection string has no Server (or Data Source).")
    lowered = server.lower().removeprefix("tcp:")
    if lowered.startswith("(localdb)"):
        raise ValueError(
            "LocalDB is a per-user local engine; every cluster node needs a shared SQL Server."
        )
    instance = lowered.split("\\", 1)[1] if "\\" in lowered else ""
    host = lowered.split("\\", 1)[0].split(",", 1)[0]
    if instance == "sqlexpress" or "express" in instance:
        raise ValueError("SQL Server Express is not supported for a clustered Access Manager.")
    if instance == "ams" and host in {".", "localhost", "(local)", "127.0.0.1"}:
        raise ValueError(
            "This is the installer's local Express instance (.\\AMS); it exists on one node only."
        )
    if host in {".", "localhost", "(local)", "127.0.0.1", "::1"}:
        raise ValueError(
            "A local server name points each node at itself; use the SQL server's name."
        )
    if "password" in known:
        raise ValueError(
            "Remove the password: the service connects with its own Windows account "
            "(Integrated Security=true)."
        )
    return value


def unc_path(value: str) -> str:
    """A file share witness path such as \\\\fileserver\\witness."""
    value = _printable((value or "").strip(), "Share path", 300)
    if not value:
        raise ValueError("Share path is required.")
    if not _UNC_RE.match(value):
        raise ValueError(f"'{value}' is not a UNC path such as \\\\fileserver\\witness.")
    return value


def unc_server(path: str) -> str:
    """The server part of a UNC path (\\\\FS1\\witness -> FS1), as typed."""
    match = _UNC_RE.match((path or "").strip())
    return match["server"] if match else ""


def share_on_node(path: str, nodes: list[tuple[str, str]]) -> str | None:
    """The node (name) a UNC path's server is, given (name, WinRM host) pairs, or None."""
    server = unc_server(path).rstrip(".").lower()
    if not server:
        return None
    for name, host in nodes:
        host = (host or "").rstrip(".").lower()
        if server in (name.lower(), host) or server == host.split(".", 1)[0]:
            return name
        if server.split(".", 1)[0] == name.lower():
            return name
    return None


def ams_version(value: str) -> str:
    """Major.Minor.Build[.Revision], normalised to four parts."""
    value = _printable((value or "").strip(), "Version", 40)
    match = _VERSION_RE.match(value)
    if not match:
        raise ValueError(
            f"Version '{value}' must look like Major.Minor.Build[.Revision], e.g. 2.1.1069.0."
        )
    parts = [int(p) for p in match.groups(default="0")]
    return ".".join(str(p) for p in parts)


def license_key(value: str) -> str:
    """The Enterprise licence key must be present; its content is checked by Access Manager itself."""
    value = _printable((value or "").strip(), "License key", 8192)
    if not value:
        raise ValueError("An Enterprise edition license key is required for a cluster.")
    if len(value) < 16:
        raise ValueError("That license key is too short to be a real key.")
    return value


def access_key(value: str) -> str:
    """A storage account access key: the rule of the other step secret (the license key)."""
    return _printable((value or "").strip(), "Storage account access key", 512)


MAX_PAGE = 100_000


def page_number(number: int | None) -> int:
    """A page of a list, 1 to MAX_PAGE (a huge number would overflow the database's OFFSET)."""
    return min(max(number or 1, 1), MAX_PAGE)


def plain_text(value: str, what: str, limit: int = 200, required: bool = True) -> str:
    """Free text such as a deployment name: printable, bounded, stored literally."""
    value = _printable((value or "").strip(), what, limit)
    if required and not value:
        raise ValueError(f"{what} is required.")
    return value


MAX_CA_BUNDLE = 256 * 1024  # bytes; a chain of a few CAs is a few KB
MAX_CA_CERTIFICATES = 20


def ca_bundle(data: bytes | str) -> str:
    """PEM certificates of the CAs a deployment trusts for its nodes' WinRM HTTPS listeners.

    Returns the certificates re-encoded as PEM (nothing else kept: no comments, no text between
    blocks). Refused: anything but PEM certificates, a private key (never upload one), more than
    MAX_CA_CERTIFICATES, and certificates that have expired or are not valid yet."""
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "replace")
    if len(raw) > MAX_CA_BUNDLE:
        raise ValueError(f"The CA file is larger than {MAX_CA_BUNDLE // 1024} KB.")
    if b"PRIVATE KEY" in raw:
        raise ValueError(
            "The file contains a private key. Upload only the CA's certificate (the public part)."
        )
    if b"-----BEGIN CERTIFICATE-----" not in raw:
        raise ValueError(
            "Not a PEM certificate file: it must contain -----BEGIN CERTIFICATE----- blocks "
            "(export the CA certificate as Base-64 encoded X.509, .cer or .pem)."
        )
    try:
        certificates = x509.load_pem_x509_certificates(raw)
    except ValueError:
        raise ValueError("A certificate in the file cannot be read (damaged PEM block).") from None
    if len(certificates) > MAX_CA_CERTIFICATES:
        raise ValueError(f"At most {MAX_CA_CERTIFICATES} certificates per deployment.")
    now = datetime.now(UTC)
    for cert in certificates:
        subject = cert.subject.rfc4514_string() or "(no subject)"
        if cert.not_valid_after_utc < now:
            raise ValueError(
                f"The certificate {subject} expired on {cert.not_valid_after_utc:%Y-%m-%d}."
            )
        if cert.not_valid_before_utc > now:
            raise ValueError(
                f"The certificate {subject} is not valid before {cert.not_valid_before_utc:%Y-%m-%d}."
            )
        if not _can_anchor(cert):
            issuer = cert.issuer.rfc4514_string()
            raise ValueError(
                f"{subject} is a server certificate issued by {issuer}, and cannot be trusted on its "
                f"own: upload the certificate of {issuer} (and of its root) instead."
            )
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in certificates)


def _can_anchor(cert: x509.Certificate) -> bool:
    """True for a CA certificate, or a self-signed one (New-SelfSignedCertificate on the node),
    which OpenSSL accepts as a trust anchor; a leaf issued by a CA is not (no partial chains)."""
    try:
        if cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            return True
    except x509.ExtensionNotFound:
        pass
    return cert.issuer == cert.subject


def ca_bundle_summary(pem: str | None) -> list[dict]:
    """What a stored bundle holds, for pages and the API: subject, issuer, expiry, fingerprint."""
    if not pem:
        return []
    return [
        {
            "subject": c.subject.rfc4514_string(),
            "issuer": c.issuer.rfc4514_string(),
            "not_after": c.not_valid_after_utc.strftime("%Y-%m-%d"),
            "sha256": c.fingerprint(hashes.SHA256()).hex().upper(),
        }
        for c in x509.load_pem_x509_certificates(pem.encode("ascii"))
    ]
