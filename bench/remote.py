"""Remote-execution figures: the whole product path vs raw pypsrp, fan-out, SSE latency, memory.

Run: `python bench/remote.py` (DATABASE_URL / REDIS_URL as for the app; SQLite + filesystem broker when unset).
Starts an in-process lab (8 nodes), a real `celery worker -P threads -c 8`, and gunicorn (gthread) serving
the app. The product path is: POST /deployments/<id>/steps/<key>/run -> Celery -> pypsrp -> lab -> the
`step.finished` event received by an SSE client. The step is the first of a two-step test guide, so
a run does not complete the deployment (whose credential wipe would close the worker's pools for it):
this is the cost of every step but a deployment's last. A two-phase step (detect, then verify; likewise the
first of two steps) is timed the same way. The last line printed is JSON with the headline figures.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORK = Path(tempfile.mkdtemp(prefix="amsw-bench-"))
os.environ.setdefault("AMSW_INSTANCE_DIR", str(WORK / "instance"))

import requests  # noqa: E402
from pypsrp.powershell import PowerShell, RunspacePool  # noqa: E402
from pypsrp.wsman import WSMan  # noqa: E402

from app.remote import scripts  # noqa: E402
from app.setup import freeze_startup_objects  # noqa: E402
from tests.conftest import postgres_database  # noqa: E402
from tests.execution import harness, labkit  # noqa: E402
from tests.execution.harness import LAB_PASSWORD, LAB_USER  # noqa: E402

# One queue, and so one pub/sub channel prefix, for the web, the worker and this process's own
# app (which publishes the SSE test's events). Set after the imports: tests.conftest sets a
# queue of its own when imported, and config.py read the variable before that, so until this
# was set here the bench's events went to a channel the web never heard (0 of 4000 delivered).
QUEUE = f"amsw-bench-{os.getpid()}"
os.environ["AMSW_CELERY_QUEUE"] = QUEUE

NODES = [f"node{i}" for i in range(1, 9)]
BENCH_GUIDE = "exec-echo-two"  # exec_echo then exec_echo_later; the bench runs only the first
SSE_CLIENTS = 200
ROUNDS = 60  # trivial action, raw and product alternately
ROUNDS_1S = 5  # 1 s action (and the 8-node fan-out)
ROUNDS_PHASED = 20  # a two-phase step


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_ms(pids) -> float:
    """User + system CPU time of these processes so far, in ms."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total * 1000 / tick


def pids_named(name: str) -> list[int]:
    out = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


def machine_speed() -> dict[str, float]:
    """How fast this machine is right now, to read the other figures against: a pure-Python loop
    (3 million additions) and a loopback round trip (send and receive one byte on a socket pair).
    Shared machines drift: raw pypsrp has varied from 8 to 30 ms between runs here."""
    started, total = time.perf_counter(), 0
    for i in range(3_000_000):
        total += i
    loop_ms = (time.perf_counter() - started) * 1000
    left, right = socket.socketpair()
    with left, right:
        started = time.perf_counter()
        for _ in range(20_000):
            left.send(b"x")
            right.recv(1)
    return {"machine_loop_ms": loop_ms, "machine_socket_us": (time.perf_counter() - started) * 50}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Web:
    """gunicorn -k gthread serving the app (with the test guides registered)."""

    def __init__(self, db_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "DATABASE_URL": db_url,
            "CREDENTIAL_KEY": harness.TestConfig.CREDENTIAL_KEY,
            "SECRET_KEY": "bench-secret",
            "PYTHONPATH": str(ROOT),
            "SSE_KEEPALIVE_SECONDS": "15",
        }
        cmd = [
            sys.executable,
            "-m",
            "gunicorn",
            "-k",
            "gthread",
            "-w",
            "1",
            "--threads",
            "300",
            "-b",
            f"127.0.0.1:{self.port}",
            "--timeout",
            "120",
            "bench.wsgi_bench:app",
        ]
        self.log = open(WORK / "web.log", "wb")  # noqa: SIM115
        self.proc = harness.spawn_group(cmd, env, self.log)
        for _ in range(200):
            try:
                requests.get(f"{self.url}/login", timeout=5)
                return
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError((WORK / "web.log").read_text()[-3000:])

    def worker_pid(self) -> int:
        out = subprocess.run(
            ["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True
        ).stdout.split()
        return int(out[0]) if out else self.proc.pid

    def stop(self) -> None:
        """Stop the arbiter and its worker (open SSE streams would keep an orphaned worker busy)."""
        harness.stop_group(self.proc, timeout=5)


class RawPool:
    """Raw pypsrp on one reused pool of a lab node: a vetted script's text, parameters, invoke()."""

    def __init__(self, port: int) -> None:
        wsman = WSMan(
            "127.0.0.1",
            port=port,
            ssl=False,
            auth="ntlm",
            username=LAB_USER,
            password=LAB_PASSWORD,
        )
        self.pool = RunspacePool(wsman)
        self.pool.open()

    def run(self, script: str, params: dict) -> float:
        """One invocation; returns ms."""
        started = time.perf_counter()
        ps = PowerShell(self.pool)
        ps.add_script(scripts.load(script)).add_parameters(params)
        ps.invoke()
        assert not ps.had_errors, ps.streams.error
        return (time.perf_counter() - started) * 1000

    def close(self) -> None:
        self.pool.close()


class SSEClients:
    """Many raw-socket SSE clients on one selector thread; records receipt time of each event's `t`."""

    def __init__(self, url: str, path: str, cookie: str, count: int) -> None:
        host, port = url.split("//")[1].split(":")
        self.sel = selectors.DefaultSelector()
        self.latencies: list[float] = []
        self.stop_flag = False
        self.buffers: dict[socket.socket, bytes] = {}
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n"
            f"Cookie: {cookie}\r\nConnection: keep-alive\r\n\r\n"
        ).encode()
        for _ in range(count):
            sock = socket.create_connection((host, int(port)))
            sock.sendall(request)
            sock.setblocking(False)
            self.buffers[sock] = b""
            self.sel.register(sock, selectors.EVENT_READ)
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stop_flag:
            for key, _ in self.sel.select(0.2):
                sock = key.fileobj
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    continue
                now = time.time()
                buf = self.buffers[sock] + data
                *lines, rest = buf.split(b"\n")
                self.buffers[sock] = rest
                for line in lines:
                    if line.startswith(b"data:") and b'"bench_t"' in line:
                        sent = float(re.search(rb'"bench_t":([0-9.]+)', line).group(1))
                        self.latencies.append((now - sent) * 1000)

    def close(self) -> None:
        self.stop_flag = True
        self.thread.join(2)
        for sock in self.buffers:
            sock.close()


def login(url: str) -> requests.Session:
    return harness.signed_in_session(url)


class Stream:
    """One SSE connection read with http.client's read1 (chunked decoding, whole reads).

    The lab shares this process, so the client must cost little CPU: byte-at-a-time readers
    (requests' iter_lines(chunk_size=1)) would slow the lab and be counted as product latency."""

    def __init__(self, base_url: str, path: str, cookie: str) -> None:
        host, port = base_url.split("//")[1].split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=60)
        self.conn.request("GET", path, headers={"Accept": "text/event-stream", "Cookie": cookie})
        self.response = self.conn.getresponse()
        assert self.response.status == 200, self.response.status
        self.buffer = b""

    def lines(self):
        while True:
            data = self.response.read1(65536)
            if not data:
                return
            *lines, self.buffer = (self.buffer + data).split(b"\n")
            for line in lines:
                yield line.decode()

    def close(self) -> None:
        self.conn.close()


def cookie_header(http: requests.Session) -> str:
    return "; ".join(f"{k}={v}" for k, v in http.cookies.items())


CURSORS: dict[int, int] = {}  # deployment id -> last event seq the bench has read


def product_run(http: requests.Session, url: str, deployment_id: int, step_key: str) -> float:
    """POST run, wait for step.finished on SSE; returns ms."""
    page = http.get(f"{url}/deployments/{deployment_id}/steps/{step_key}", timeout=10).text
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    after = CURSORS.get(deployment_id, 0)  # the log read so far: only the new page is fetched
    while True:
        last = http.get(
            f"{url}/deployments/{deployment_id}/events.json?after={after}&limit=1000", timeout=10
        ).json()
        after = last["next_after"]
        if not last["more"]:
            break
    CURSORS[deployment_id] = after
    sse = Stream(url, f"/deployments/{deployment_id}/events?after={after}", cookie_header(http))
    try:
        lines = sse.lines()
        next(lines)  # retry: line -> stream is open (hub subscribed) before we start
        started = time.perf_counter()
        response = http.post(
            f"{url}/deployments/{deployment_id}/steps/{step_key}/run",
            timeout=10,
            data={"csrf_token": token, "username": LAB_USER, "password": LAB_PASSWORD},
            allow_redirects=False,
        )
        assert response.status_code in (302, 303), response.status_code
        for line in lines:
            if line.startswith("data:") and '"step.finished"' in line:
                assert '"status":"done"' in line, line
                return (time.perf_counter() - started) * 1000
    finally:
        sse.close()
    raise RuntimeError("stream ended")


def main() -> None:
    from app.execution.worker.sessions import SESSIONS
    from app.extensions import db

    speed_before = machine_speed()
    db_gen = _database()
    db_url = next(db_gen)
    app = harness.create_app(
        harness.TestConfig,
        {"SQLALCHEMY_DATABASE_URI": db_url, "CELERY_QUEUE": QUEUE, **harness.SETTINGS},
    )
    observed = labkit.Observed()
    lab = labkit.start_lab(WORK, NODES, LAB_USER, LAB_PASSWORD, observed)
    with app.app_context():
        db.create_all()
        harness.make_user()
        # Two-step guide: a run of the first step does not complete the deployment, so its
        # credentials are not wiped and the worker's pool is reused, as for every step but the last.
        one = harness.seed_deployment(lab, BENCH_GUIDE, nodes=["node1"])
        slow1 = harness.seed_deployment(lab, BENCH_GUIDE, inputs={"seconds": 1}, nodes=["node1"])
        slow8 = harness.seed_deployment(lab, BENCH_GUIDE, inputs={"seconds": 1}, nodes=NODES)
        sse_dep = harness.seed_deployment(lab, "exec-echo", nodes=["node1"])
        phased = harness.seed_deployment(lab, "exec-test-two", nodes=["node1"])
    # The worker runs with the product's own timings (heartbeat every 5 s), not the tests' short ones.
    worker = harness.Worker(db_url, WORK / "worker.log", queue=QUEUE, loglevel="INFO", settings={})
    web = Web(db_url)
    figures: dict[str, float] = {}
    try:
        raw_pool = RawPool(lab.ports["node1"])
        raw_run = raw_pool.run
        http = login(web.url)
        product_run(http, web.url, one, "exec_echo")  # warm-up (imports, first pool)
        raw_run("exec_echo", {"Text": "hi"})
        # This process hosts the lab, the raw client and the SSE clients: a full collection of
        # its start-up objects (about 230 ms here) would be counted against one side or the
        # other. The web and the worker do the same at start (app/setup.py).
        freeze_startup_objects()

        # Side by side: raw and product runs alternate, so both meet the same machine load.
        raw, product, raw_1s, product_1s = [], [], [], []
        groups = {
            "web": [web.worker_pid()],
            "worker": [worker.proc.pid],
            "postgres": pids_named("postgres"),
            "redis": pids_named("redis-server"),
            "bench+lab": [os.getpid()],
        }
        before = {name: cpu_ms(pids) for name, pids in groups.items()}
        for _ in range(ROUNDS):
            raw.append(raw_run("exec_echo", {"Text": "hi"}))
            product.append(product_run(http, web.url, one, "exec_echo"))
        cpu = {name: (cpu_ms(pids) - before[name]) / ROUNDS for name, pids in groups.items()}
        for _ in range(ROUNDS_1S):
            raw_1s.append(raw_run("exec_wait", {"Seconds": 1}))
            product_1s.append(product_run(http, web.url, slow1, "exec_echo"))
        raw_pool.close()
        fan_8 = [product_run(http, web.url, slow8, "exec_echo") for _ in range(ROUNDS_1S)]

        # A step of several phases, as real steps are: exec_step detects, then (once applied)
        # verifies. The worker that closes a phase runs the next phase's first action itself.
        for _ in range(2):  # the first run also applies; later runs are detect + verify
            product_run(http, web.url, phased, "exec_step")
        two_phase = [product_run(http, web.url, phased, "exec_step") for _ in range(ROUNDS_PHASED)]

        figures.update(
            two_phase_p50_ms=statistics.median(two_phase),
            raw_p50_ms=statistics.median(raw),
            product_p50_ms=statistics.median(product),
            product_p90_ms=pct(product, 90),
            added_ms_p50=statistics.median(product) - statistics.median(raw),
            ratio_1s=statistics.median(product_1s) / statistics.median(raw_1s),
            fanout_ratio_8=statistics.median(fan_8) / statistics.median(product_1s),
        )
        print(
            "product path: POST run -> step.finished on SSE, the step being the first of two "
            "(deployment not completed: credentials kept, worker pool reused; a deployment's "
            "last step also pays for a new pool, since a credential wipe closes its pools)"
        )
        print(
            f"raw pypsrp reused pool: p50 {figures['raw_p50_ms']:.1f} ms; product p50 "
            f"{figures['product_p50_ms']:.1f} ms p90 {figures['product_p90_ms']:.1f} ms"
        )
        print(
            "CPU per round (one raw and one product run, both including the lab's share; the web's "
            "also covers the step page and events.json read before each POST): "
            + ", ".join(f"{name} {ms:.1f} ms" for name, ms in cpu.items())
        )
        print(f"two-phase step (detect, verify; 1 node): p50 {figures['two_phase_p50_ms']:.1f} ms")
        print(
            f"1 s action: raw {statistics.median(raw_1s):.0f} ms, product {statistics.median(product_1s):.0f} ms;"
            f" 8 nodes {statistics.median(fan_8):.0f} ms"
        )

        # SSE fan-out latency: writer (this process, like a worker) -> 200 clients
        cookie = cookie_header(http)
        current = http.get(
            f"{web.url}/deployments/{sse_dep}/events.json?after=0&limit=1000"
        ).json()["next_after"]
        clients = SSEClients(
            web.url, f"/deployments/{sse_dep}/events?after={current}", cookie, SSE_CLIENTS
        )
        time.sleep(2)
        from app.events.publish import publish

        with app.app_context():
            for _ in range(20):
                publish(
                    sse_dep, "node.output", {"text": "bench", "bench_t": time.time()}, node="node1"
                )
                time.sleep(0.25)
        time.sleep(2)
        clients.close()
        got = clients.latencies
        print(
            f"SSE: {len(got)} deliveries of {20 * SSE_CLIENTS} expected; "
            f"p50 {statistics.median(got) if got else float('nan'):.1f} ms"
        )
        # A lost event has no latency: any loss makes the figure missing, not a better p99.
        complete = len(got) == 20 * SSE_CLIENTS
        figures["sse_p99_ms"] = pct(got, 99) if complete else float("nan")
        figures["sse_delivered"] = len(got)
        figures["web_rss_mb"] = rss_mb(web.worker_pid())
        figures["worker_rss_mb"] = rss_mb(worker.proc.pid)
        speed_after = machine_speed()
        print(
            "machine speed, before and after (3 M Python additions; a loopback socket round trip): "
            f"{speed_before['machine_loop_ms']:.0f} / {speed_after['machine_loop_ms']:.0f} ms, "
            f"{speed_before['machine_socket_us']:.1f} / {speed_after['machine_socket_us']:.1f} us"
        )
        figures.update(speed_after)
    finally:
        SESSIONS.close_all()
        web.stop()
        worker.stop()
        lab.stop()
        db_gen.close()
    keys = (
        "added_ms_p50",
        "ratio_1s",
        "fanout_ratio_8",
        "sse_p99_ms",
        "web_rss_mb",
        "worker_rss_mb",
    )
    for key, value in figures.items():
        print(f"{key}: {value:.3f}" if isinstance(value, float) else f"{key}: {value}")
    print(json.dumps({k: round(figures[k], 3) for k in keys}))


def _database():
    """A throwaway PostgreSQL database (DATABASE_URL) or a SQLite file in WAL mode."""
    base = os.environ.get("DATABASE_URL", "")
    if base.startswith("postgresql"):
        yield from postgres_database(base, prefix="amsw_bench")
        return
    from sqlalchemy import create_engine

    url = f"sqlite:///{WORK / 'bench.sqlite3'}"
    engine = create_engine(url)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    engine.dispose()
    yield url


if __name__ == "__main__":
    main()
