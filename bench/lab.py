"""Lab latency and throughput through the real pypsrp client; the last line printed is JSON."""

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pypsrp.client import Client  # noqa: E402
from pypsrp.powershell import PowerShell, RunspacePool  # noqa: E402
from pypsrp.wsman import WSMan  # noqa: E402

from app.lab import scenarios  # noqa: E402
from app.lab.handlers import handler  # noqa: E402
from app.lab.server import LabServer  # noqa: E402
from app.lab.store import LabStore  # noqa: E402
from app.remote.runner import Connection, NodeSession, run_script  # noqa: E402
from tests.kdc import LAB_REALM, lab_realm  # noqa: E402

SCRIPTS = ROOT / "tests" / "lab" / "scripts"
USER, PASSWORD = "benchadmin", "Bench-Passw0rd!"
COPY_MB = 20


@handler("lab_echo")
def _echo(ctx):
    """A trivial model: one JSON result, nothing else."""
    return {"greeting": f"Hello {ctx.params['Name']}"}


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile in milliseconds."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))] * 1000


def wsman(port: int, auth: str = "basic") -> WSMan:
    """A pypsrp transport to the bench node."""
    encryption = "never" if auth == "basic" else "auto"
    return WSMan(
        "127.0.0.1",
        port=port,
        username=USER,
        password=PASSWORD,
        ssl=False,
        auth=auth,
        encryption=encryption,
    )


def invoke(pool: RunspacePool, script: str) -> None:
    """One trivial round trip."""
    ps = PowerShell(pool)
    ps.add_script(script).add_parameters({"Name": "bench"})
    ps.invoke()


def reused_pool(port: int, script: str, count: int = 300) -> list[float]:
    """Round trips on one open pool."""
    timings = []
    with RunspacePool(wsman(port)) as pool:
        for _ in range(count):
            start = time.perf_counter()
            invoke(pool, script)
            timings.append(time.perf_counter() - start)
    return timings[10:]


def fresh_pool(port: int, script: str, count: int = 100) -> list[float]:
    """Open a pool, run once, close it; the transport (connection) is kept."""
    timings, transport = [], wsman(port)
    for _ in range(count):
        start = time.perf_counter()
        with RunspacePool(transport) as pool:
            invoke(pool, script)
        timings.append(time.perf_counter() - start)
    return timings[5:]


def copy_speed(port: int, auth: str, source: Path) -> float:
    """Client.copy throughput in MB/s."""
    client = Client(
        "127.0.0.1",
        port=port,
        username=USER,
        password=PASSWORD,
        ssl=False,
        auth=auth,
        encryption="never" if auth == "basic" else "auto",
    )
    start = time.perf_counter()
    client.copy(str(source), f"C:\\bench\\{auth}.bin")
    return source.stat().st_size / (1024 * 1024) / (time.perf_counter() - start)


def auth_round_trips(folder: Path) -> dict[str, dict[str, float]]:
    """The product's runner on the connection probe, per authentication: `reused` on one open
    pool (what every action after the first on a node costs), `fresh` a new connection, sign-in
    and pool each time (the first action on a node: for Kerberos a ticket from the KDC, for
    CredSSP the TLS and NTLM handshake and the delegated password)."""
    realm = lab_realm(folder / "kdc", {USER: PASSWORD})
    store = LabStore(folder / "auth" / "state.json")
    store.replace(scenarios.default_state(["AMS1"]))
    with store.transaction() as state:
        scenarios.apply_fault(state, "credssp:AMS1")
    server = LabServer(store, ["AMS1"], 0, USER, PASSWORD, keytab=realm.keytab).start()
    figures = {}
    try:
        for auth in ("ntlm", "kerberos", "credssp"):
            conn = Connection(
                "127.0.0.1",
                port=server.ports["AMS1"],
                auth=auth,
                username=USER,
                password=PASSWORD,
                realm=LAB_REALM,
                kdcs=(realm.kdc,),
                spn_host="ams1.corp.example.test",
            )
            session, reused = NodeSession(conn), []
            for _ in range(60):
                start = time.perf_counter()
                session.run("connection_probe", {}, timeout=30)
                reused.append(time.perf_counter() - start)
            session.close()
            fresh = []
            for _ in range(25):
                start = time.perf_counter()
                run_script(conn, "connection_probe", {}, timeout=30)
                fresh.append(time.perf_counter() - start)
            assert server.auth_methods["AMS1"] >= {auth}, server.auth_methods
            figures[auth] = {
                "reused_p50_ms": round(percentile(reused[5:], 50), 1),
                "fresh_p50_ms": round(percentile(fresh[3:], 50), 1),
                "fresh_p99_ms": round(percentile(fresh[3:], 99), 1),
            }
    finally:
        server.stop()
        realm.stop()
    return figures


def main() -> None:
    """Run every measurement and print the figures."""
    folder = Path(tempfile.mkdtemp(prefix="lab-bench-"))
    store = LabStore(folder / "state.json")
    store.replace({"nodes": {"bench": {"files": {}}}, "faults": {}})
    server = LabServer(store, ["bench"], 0, USER, PASSWORD, extra_scripts_dirs=[SCRIPTS]).start()
    port, script = server.ports["bench"], (SCRIPTS / "lab_echo.ps1").read_text()
    source = folder / "payload.bin"
    source.write_bytes(os.urandom(COPY_MB * 1024 * 1024))
    try:
        reused, fresh = reused_pool(port, script), fresh_pool(port, script)
        basic, ntlm = copy_speed(port, "basic", source), copy_speed(port, "ntlm", source)
    finally:
        server.stop()
    by_auth = auth_round_trips(folder)
    result = {
        "reused_p50_ms": round(percentile(reused, 50), 2),
        "reused_p99_ms": round(percentile(reused, 99), 2),
        "fresh_p50_ms": round(percentile(fresh, 50), 2),
        "fresh_p99_ms": round(percentile(fresh, 99), 2),
        "copy_basic_mbps": round(basic, 1),
        "copy_ntlm_mbps": round(ntlm, 1),
        "connection_probe": by_auth,
    }
    print(
        f"reused pool: p50 {result['reused_p50_ms']} ms, p99 {result['reused_p99_ms']} ms "
        f"(mean {statistics.mean(reused) * 1000:.2f} ms, n={len(reused)})"
    )
    print(f"fresh pool:  p50 {result['fresh_p50_ms']} ms, p99 {result['fresh_p99_ms']} ms")
    print(
        f"Client.copy {COPY_MB} MB: basic {result['copy_basic_mbps']} MB/s, "
        f"ntlm+encryption {result['copy_ntlm_mbps']} MB/s"
    )
    for auth, figures in by_auth.items():
        print(
            f"connection probe, {auth:8}: reused pool p50 {figures['reused_p50_ms']} ms; fresh "
            f"sign-in p50 {figures['fresh_p50_ms']} ms, p99 {figures['fresh_p99_ms']} ms"
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
