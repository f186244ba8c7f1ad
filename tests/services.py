"""Private instances of the shared services, for tests that stop and restart them.

The machine's own PostgreSQL and Redis are never restarted: a test that needs an outage starts its
own server from Debian's binaries, on a free loopback port, with its data in a temporary folder.
A missing binary fails the test (never skips it).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    """A TCP port nobody listens on now (the kernel's choice)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_port(port: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout} s")


class PrivateRedis:
    """`redis-server` on a port of its own; stop() and start() again keep its data (AOF), as a
    production Redis with a volume does across a restart."""

    def __init__(self, folder: Path, persist: bool = True) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not os.path.exists(binary):
            raise RuntimeError("redis-server is missing: apt-get install -y redis-server")
        self.binary, self.folder, self.persist = binary, folder, persist
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None
        folder.mkdir(parents=True, exist_ok=True)
        self.start()

    def start(self) -> None:
        """Start (again) on the same port and folder."""
        aof = ["--appendonly", "yes", "--appendfsync", "always"] if self.persist else []
        cmd = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        cmd += ["--dir", str(self.folder), *aof]
        log = open(self.folder / "redis.log", "ab")  # noqa: SIM115 - the server's own stdout
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        _wait_port(self.port, 10, "redis-server")

    def stop(self) -> None:
        """SIGTERM, as `systemctl restart redis` or a container stop does."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class PrivatePostgres:
    """A PostgreSQL cluster of its own (initdb in a temporary folder, pg_ctl to stop and start),
    listening on loopback only, trust authentication, run as the `postgres` user when root.

    The cluster lives in a folder of its own under the system's temporary directory, not in the
    test's `tmp_path`: pytest's folders are private to root, where `postgres` cannot reach them."""

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if not found:
            raise RuntimeError(
                "PostgreSQL's server binaries are missing: apt-get install postgresql"
            )
        self.bin = Path(found[-1]).parent
        self.folder, self.port = Path(tempfile.mkdtemp(prefix="amsw-pg-")), free_port()
        self.data, self.log = self.folder / "data", self.folder / "postgres.log"
        self._as_owner(self.folder)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self.start()

    def _as_owner(self, path: Path) -> None:
        """The cluster's files belong to `postgres` when the tests run as root (initdb refuses root)."""
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bin / tool), *args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr or done.stdout}")

    def start(self) -> None:
        """Start (again) on the same port and data folder; returns once it accepts connections."""
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """`fast` ends every session (as a restart does); `immediate` is a crash."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        """Whether the server is up (pg_ctl status)."""
        try:
            self._run("pg_ctl", "-D", str(self.data), "status")
        except RuntimeError:
            return False
        return True

    def remove(self) -> None:
        """Stop the server if it runs and delete the cluster's folder."""
        if self.running():
            self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)
