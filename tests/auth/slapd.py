"""A real OpenLDAP server (Debian's slapd) on a free loopback port, seeded with users and groups.

Needs the `slapd` and `ldap-utils` packages (.ci/run installs them); a missing binary fails the test.
"""

import shutil
import socket
import subprocess
import time
from pathlib import Path

SUFFIX = "dc=example,dc=test"
ADMIN_DN = f"cn=admin,{SUFFIX}"
ADMIN_PASSWORD = "admin-secret"
SCHEMAS = ("core", "cosine", "inetorgperson", "nis")
SLAPD = shutil.which("slapd") or "/usr/sbin/slapd"
SLAPADD = shutil.which("slapadd") or "/usr/sbin/slapadd"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _conf(folder: Path) -> str:
    includes = "\n".join(f"include /etc/ldap/schema/{name}.schema" for name in SCHEMAS)
    return f"""{includes}
pidfile {folder}/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize 10485760
suffix "{SUFFIX}"
rootdn "{ADMIN_DN}"
rootpw {ADMIN_PASSWORD}
directory {folder}/data
access to attrs=userPassword by self auth by anonymous auth by * none
access to * by * read
"""


def _ldif(users: dict[str, str], groups: dict[str, list[str]]) -> str:
    blocks = [
        f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example",
        f"dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people",
        f"dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups",
    ]
    for uid, password in users.items():
        blocks.append(
            f"dn: uid={uid},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: {uid}\n"
            f"cn: {uid}\nsn: {uid}\nuserPassword: {password}"
        )
    for name, members in groups.items():
        lines = "\n".join(f"member: uid={m},ou=people,{SUFFIX}" for m in members)
        blocks.append(
            f"dn: cn={name},ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: {name}\n{lines}"
        )
    return "\n\n".join(blocks) + "\n"


class Slapd:
    """Start with `start()`, stop with `stop()`; `url` is ldap://127.0.0.1:<port>."""

    def __init__(self, folder: Path, users: dict[str, str], groups: dict[str, list[str]]):
        self.folder, self.users, self.groups = folder, users, groups
        self.port = free_port()
        self.url = f"ldap://127.0.0.1:{self.port}"
        self.process = None

    def start(self) -> None:
        assert Path(SLAPD).exists(), "slapd is not installed: apt-get install -y slapd ldap-utils"
        (self.folder / "data").mkdir(parents=True)
        conf = self.folder / "slapd.conf"
        conf.write_text(_conf(self.folder))
        seed = self.folder / "seed.ldif"
        seed.write_text(_ldif(self.users, self.groups))
        subprocess.run([SLAPADD, "-f", str(conf), "-l", str(seed)], check=True, capture_output=True)
        self.process = subprocess.Popen(
            [SLAPD, "-f", str(conf), "-h", self.url, "-d", "0"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._wait()

    def _wait(self) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"slapd exited: {self.process.stderr.read().decode()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("slapd did not start listening within 15 s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
