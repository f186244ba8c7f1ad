"""A private MIT Kerberos KDC for the tests (Debian's krb5-kdc and krb5-admin-server), started in
a temporary folder on a free port, never touching the machine's own Kerberos configuration.

`Realm.start(folder, realm, users, services)` creates the database, the user principals with
their passwords, the service principals (`HTTP/<node fqdn>`) with one keytab, and runs `krb5kdc`
in the foreground until `stop()`. A test that needs it fails (never skips) when the packages are
missing, naming the command that installs them."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

PACKAGES = "krb5-kdc krb5-admin-server krb5-user"
_SBIN = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")


def tool(name: str) -> str:
    """The path of a Kerberos program, or an AssertionError naming the packages to install."""
    found = shutil.which(name) or next(
        (f"{d}/{name}" for d in _SBIN if os.access(f"{d}/{name}", os.X_OK)), None
    )
    assert found, f"{name} is missing: apt-get install -y {PACKAGES} (make test does it as root)"
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Realm:
    folder: Path
    name: str
    port: int
    keytab: Path
    users: dict[str, str]
    process: subprocess.Popen | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def kdc(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def krb5_conf(self) -> Path:
        return self.folder / "krb5.conf"

    @classmethod
    def start(cls, folder: Path, name: str, users: dict[str, str], services: list[str]) -> Realm:
        folder.mkdir(parents=True, exist_ok=True)
        port = free_port()
        realm = cls(folder, name, port, folder / "http.keytab", dict(users))
        (folder / "krb5.conf").write_text(
            "[libdefaults]\n"
            f"  default_realm = {name}\n"
            "  dns_lookup_kdc = false\n  dns_lookup_realm = false\n"
            "  rdns = false\n  dns_canonicalize_hostname = false\n"
            "  udp_preference_limit = 1\n"
            f"[realms]\n  {name} = {{\n    kdc = 127.0.0.1:{port}\n  }}\n"
        )
        (folder / "kdc.conf").write_text(
            f"[kdcdefaults]\n  kdc_ports = {port}\n  kdc_tcp_ports = {port}\n"
            f"[realms]\n  {name} = {{\n"
            f"    database_name = {folder}/principal\n"
            f"    key_stash_file = {folder}/stash\n"
            f"    acl_file = {folder}/kadm5.acl\n"
            "    max_life = 10h 0m 0s\n"
            "    supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal\n"
            f"  }}\n[logging]\n  kdc = FILE:{folder}/kdc.log\n"
        )
        (folder / "kadm5.acl").write_text("")
        realm.env = {
            **os.environ,
            "KRB5_CONFIG": str(folder / "krb5.conf"),
            "KRB5_KDC_PROFILE": str(folder / "kdc.conf"),
        }
        realm._run(tool("kdb5_util"), "-r", name, "-P", "lab-master-key", "create", "-s")
        for user, password in users.items():
            realm.admin(f"addprinc -pw {password} {user}")
        for service in services:
            realm.admin(f"addprinc -randkey {service}")
            realm.admin(f"ktadd -k {realm.keytab} {service}")
        realm.process = subprocess.Popen(
            [tool("krb5kdc"), "-n", "-r", name],
            env=realm.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        realm._wait_listening()
        return realm

    def admin(self, query: str) -> str:
        """Run one kadmin.local query on this realm's database."""
        return self._run(tool("kadmin.local"), "-r", self.name, "-q", query)

    def _run(self, *argv: str) -> str:
        done = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"{argv[0]} failed: {done.stderr or done.stdout}"
        return done.stdout

    def _wait_listening(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.process.stderr.read().decode()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"krb5kdc did not listen on {self.port} in {timeout} s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()


LAB_REALM = "CORP.EXAMPLE.TEST"  # the lab's default domain, corp.example.test, in capitals
LAB_NODES = ("AMS1", "AMS2", "AMS3", "AMS4")


def lab_realm(folder: Path, users: dict[str, str]) -> Realm:
    """The lab domain's KDC: the given users, and HTTP/<fqdn> keys for the lab's node names."""
    services = [f"HTTP/{n.lower()}.corp.example.test" for n in LAB_NODES]
    return Realm.start(folder, LAB_REALM, users, services)
