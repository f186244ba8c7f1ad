"""Live streams at production scale: commit-to-browser latency for many SSE viewers, page latency meanwhile.

Run: `python bench/sse_scale.py [--viewers 500 --others 50]` (PostgreSQL on DATABASE_URL or 127.0.0.1:5432 as
user postgres, Redis on REDIS_URL or 127.0.0.1:6379/9). A small mode for quick runs: `--viewers 50 --others 10`.

It serves the app with the command the production image runs,
`gunicorn --config python:app.gunicorn_config "app:create_app()"` (settings from app/gunicorn_config.py, which
`--env WEB_THREADS=64` and the like change through the environment, as an operator would), on a database of its
own (`amsw_sse_bench`, dropped and created afresh). Then:

1. page latency (GET /) with no stream open;
2. opens `--viewers` streams of one deployment and `--others` streams spread over `--other-deployments` more,
   from one client process (asyncio, raw sockets: one browser's EventSource each), and counts how many the
   server actually serves (their `retry:` line arrived) within `--connect-wait` seconds;
3. publishes events from this process (as a Celery worker does: app.events.publish, Redis notify) for
   `--seconds`: `--rate` per second to the watched deployment and `--other-rate` to each other one, and
   measures commit-to-browser latency per delivery (the receive time in the client process minus the time
   the publishing transaction's COMMIT returned), while GET / is timed every `--page-interval` s;
4. closes `--close` of the streams abruptly (the browser tab closed) and times how long the server keeps
   their sockets (CLOSE_WAIT on its port) before it lets go of them.

Memory (RSS) and thread counts of the gunicorn workers are sampled before and with the streams open; the
load average is printed at start and end, since on a shared 2-CPU machine everything here competes for the
same cores as the server (the client process and the publisher included). The last line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DB_NAME = "amsw_sse_bench"
USERNAME = "sse-bench"
PASSWORD = "sse-bench-password-not-a-secret"  # a throwaway bench account
CREDENTIAL_KEY = "NpHwqf1PzpqqZfw2GWUUYFUWeWjxHamlfum7KxU6UnU="  # the tests' key; a bench database


def pct(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


# ---------------------------------------------------------------------- the client process
class _Stream(asyncio.Protocol):
    """One EventSource: records (deployment, seq, receive time) for every `id:` line."""

    def __init__(self, client, deployment_id: int, request: bytes) -> None:
        self.client = client
        self.deployment_id = deployment_id
        self.request = request
        self.buffer = b""
        self.transport = None
        self.opened = False
        self.refused = False
        self.ended = False

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        lines = (self.buffer + data).split(b"\n")
        self.buffer = lines.pop()
        for line in lines:
            if line.startswith(b"id: "):
                self.client.received.append((self.deployment_id, int(line[4:]), now))
            elif not self.opened and line.startswith(b"retry:"):
                self.opened = True
                self.client.opened += 1
            elif line.startswith(b"HTTP/1.1 503"):
                self.refused = True
                self.client.refused += 1

    def connection_lost(self, exc) -> None:
        self.ended = True
        self.client.ended += 1


class _Client:
    def __init__(self, host: str, port: int, cookie: str) -> None:
        self.host, self.port, self.cookie = host, port, cookie
        self.streams: dict[int, list[_Stream]] = {}
        self.received: list[tuple[int, int, float]] = []
        self.opened = 0
        self.refused = 0
        self.ended = 0

    async def open(self, deployment_id: int, count: int, after: int) -> None:
        request = (
            f"GET /deployments/{deployment_id}/events?after={after} HTTP/1.1\r\n"
            f"Host: {self.host}:{self.port}\r\nAccept: text/event-stream\r\n"
            f"Cache-Control: no-cache\r\nCookie: {self.cookie}\r\n\r\n"
        ).encode()
        loop = asyncio.get_running_loop()
        for start in range(0, count, 25):  # a page load's worth at a time, not a SYN flood
            batch = [
                loop.create_connection(
                    lambda: _Stream(self, deployment_id, request), self.host, self.port
                )
                for _ in range(min(25, count - start))
            ]
            for _transport, stream in await asyncio.gather(*batch):
                self.streams.setdefault(deployment_id, []).append(stream)
            await asyncio.sleep(0.05)

    def close(self, deployment_id: int, count: int) -> int:
        streams = self.streams.get(deployment_id, [])
        closing, self.streams[deployment_id] = streams[:count], streams[count:]
        for stream in closing:
            stream.transport.abort()  # a closed tab: RST/FIN, no more reads
        return len(closing)


def client_main(conn, host: str, port: int, cookie: str) -> None:
    """The client process: commands over a pipe, one asyncio loop for every stream."""

    async def run() -> None:
        client = _Client(host, port, cookie)
        loop = asyncio.get_running_loop()
        commands: asyncio.Queue = asyncio.Queue()
        loop.add_reader(conn.fileno(), lambda: commands.put_nowait(conn.recv()))
        while True:
            command, *args = await commands.get()
            if command == "open":
                await client.open(*args)
                conn.send(None)
            elif command == "state":
                conn.send(
                    {"opened": client.opened, "refused": client.refused, "ended": client.ended}
                )
            elif command == "take":
                received, client.received = client.received, []
                conn.send(received)
            elif command == "close":
                conn.send(client.close(*args))
            elif command == "quit":
                for streams in client.streams.values():
                    for stream in streams:
                        stream.transport.abort()
                conn.send(None)
                return

    asyncio.run(run())


# ---------------------------------------------------------------------- the server
def workers_of(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def proc_status(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "Threads"):
            fields[key] = int(value.split()[0])
    return {"rss_mb": fields.get("VmRSS", 0) / 1024, "threads": fields.get("Threads", 0)}


def cpu_seconds(pids) -> tuple[float, float]:
    """User and system CPU time of these processes so far, in s."""
    tick = os.sysconf("SC_CLK_TCK")
    user = system = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        user, system = user + int(fields[11]), system + int(fields[12])
    return user / tick, system / tick


def context_switches(pids) -> int:
    """Voluntary and involuntary context switches of every thread of these processes so far."""
    total = 0
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                status = (task / "status").read_text()
            except FileNotFoundError:
                continue
            for line in status.splitlines():
                if "ctxt_switches:" in line:
                    total += int(line.split()[1])
    return total


def close_wait(port: int) -> int:
    """Server-side sockets on `port` whose client has gone (CLOSE_WAIT) and that it still holds."""
    count = 0
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(name) as f:
            next(f)
            for line in f:
                parts = line.split()
                if parts[3] == "08" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                    count += 1
    return count


class Server:
    """The production command: gunicorn --config python:app.gunicorn_config "app:create_app()"."""

    def __init__(self, env: dict, work: Path, config: str = "python:app.gunicorn_config") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = work / "web.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115
        cmd = [
            sys.executable,
            "-m",
            "gunicorn",
            "--config",
            config,
            "--no-control-socket",  # as the image (Dockerfile) runs it
            "app:create_app()",
        ]
        env = {**env, "WEB_BIND": f"127.0.0.1:{self.port}"}
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        import requests

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                requests.get(f"{self.url}/login", timeout=5)
                return
            except requests.RequestException:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(self.log_path.read_text()[-3000:])

    def stats(self) -> dict:
        workers = workers_of(self.proc.pid)
        each = [proc_status(pid) for pid in workers]
        return {
            "workers": len(workers),
            "rss_mb": [round(s["rss_mb"], 1) for s in each],
            "threads": [s["threads"] for s in each],
        }

    def stop(self) -> None:
        import signal

        for signum, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.proc.pid, signum)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        self.log.close()


# ---------------------------------------------------------------------- database and publisher
def psql(sql: str, admin_url: str) -> None:
    subprocess.run(["psql", admin_url, "-qAt", "-c", sql], check=True, capture_output=True)


def prepare_database(admin_url: str) -> str:
    psql(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)', admin_url)
    psql(f'CREATE DATABASE "{DB_NAME}"', admin_url)
    from sqlalchemy.engine import make_url

    return make_url(admin_url).set(database=DB_NAME).render_as_string(hide_password=False)


def seed(app, deployments: int) -> list[int]:
    from flask_migrate import upgrade
    from sqlalchemy import text

    from app.auth.cli import create_user
    from app.deployments.service import create_deployment
    from app.extensions import db

    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        # Ids far from the 1, 2, 3 of test suites sharing this Redis server.
        db.session.execute(text("ALTER SEQUENCE deployments_id_seq RESTART WITH 700001"))
        db.session.commit()
        owner = create_user(USERNAME, PASSWORD, "admin")
        ids = []
        for i in range(deployments):
            data = {
                "name": f"SSE bench {i}",
                "domain_fqdn": "corp.example.com",
                "nodes": [
                    {
                        "name": f"AMS-NODE{n}",
                        "host": f"ams-node{n}.corp.example.com",
                        "port": 5985,
                        "transport": "http",
                        "auth": "negotiate",
                        "cert_validation": True,
                    }
                    for n in (1, 2)
                ],
            }
            ids.append(create_deployment(data, owner).id)
        return ids


def sign_in(url: str) -> str:
    import re

    import requests

    http = requests.Session()
    page = http.get(f"{url}/login", timeout=10).text
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', page
    )
    response = http.post(
        f"{url}/login",
        data={"csrf_token": token.group(1), "username": USERNAME, "password": PASSWORD},
        timeout=10,
        allow_redirects=False,
    )
    assert response.status_code in (302, 303), response.status_code
    return "; ".join(f"{k}={v}" for k, v in http.cookies.items())


class Publisher:
    """Publishes as a worker does; records when each event's COMMIT returned (wall clock)."""

    def __init__(self, app) -> None:
        from sqlalchemy import event
        from sqlalchemy.orm import Session

        self.app = app
        self.committed: dict[tuple[int, int], float] = {}
        self._last_commit = 0.0
        event.listen(Session, "after_commit", self._after_commit)

    def _after_commit(self, _session) -> None:
        self._last_commit = time.time()

    def publish(self, deployment_id: int, n: int) -> None:
        from app.events.publish import publish

        with self.app.app_context():
            event = publish(
                deployment_id, "node.output", {"text": f"bench line {n}"}, node="AMS-NODE1"
            )
            self.committed[(deployment_id, event["seq"])] = self._last_commit

    def current_seq(self, deployment_id: int) -> int:
        from app.events.hub import query_events

        with self.app.app_context():
            rows = query_events(deployment_id, 0, 100000)
            return rows[-1]["seq"] if rows else 0

    def run(self, schedule: list[tuple[float, int]], started: float) -> None:
        for n, (at, deployment_id) in enumerate(schedule):
            delay = started + at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.publish(deployment_id, n)


def schedule_for(main: int, others: list[int], seconds: float, rate: float, other_rate: float):
    plan = [(i / rate, main) for i in range(int(seconds * rate))]
    for k, dep in enumerate(others):
        offset = k / (len(others) * other_rate) if other_rate else 0
        plan += [(offset + i / other_rate, dep) for i in range(int(seconds * other_rate))]
    return sorted(plan)


class PageProbe:
    """GET `path` every `interval` s on a fresh connection, as a browser opening another page."""

    def __init__(self, url: str, cookie: str, path: str, interval: float) -> None:
        self.url, self.cookie, self.path, self.interval = url, cookie, path, interval
        self.times: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def once(self) -> float | None:
        import http.client

        host, port = self.url.split("//")[1].split(":")
        started = time.perf_counter()
        try:
            conn = http.client.HTTPConnection(host, int(port), timeout=5)
            conn.request("GET", self.path, headers={"Cookie": self.cookie, "Connection": "close"})
            response = conn.getresponse()
            response.read()
            conn.close()
            if response.status != 200:
                self.failures += 1
                return None
        except OSError:
            self.failures += 1
            return None
        elapsed = (time.perf_counter() - started) * 1000
        self.times.append(elapsed)
        return elapsed

    def _run(self) -> None:
        while not self._stop.is_set():
            self.once()
            self._stop.wait(self.interval)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(30)


def summary(values: list[float]) -> str:
    if not values:
        return "none"
    return (
        f"p50 {statistics.median(values):.1f} p90 {pct(values, 90):.1f} p99 {pct(values, 99):.1f} "
        f"max {max(values):.1f} ms (n={len(values)})"
    )


# ---------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--viewers", type=int, default=500, help="streams of the watched deployment"
    )
    parser.add_argument("--others", type=int, default=50, help="streams of other deployments")
    parser.add_argument("--other-deployments", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=20.0, help="publishing time")
    parser.add_argument("--rate", type=float, default=10.0, help="events/s, watched deployment")
    parser.add_argument("--other-rate", type=float, default=1.0, help="events/s, each other one")
    parser.add_argument("--page-interval", type=float, default=0.25)
    parser.add_argument("--connect-wait", type=float, default=20.0)
    parser.add_argument("--close", type=int, default=100, help="streams closed at the end")
    parser.add_argument(
        "--env", action="append", default=[], help="KEY=VALUE for the server, e.g. WEB_THREADS=64"
    )
    parser.add_argument(
        "--config",
        default="python:app.gunicorn_config",
        help="gunicorn --config (only to compare: the image runs the default)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (web.log)")
    args = parser.parse_args()

    admin_url = (
        os.environ.get("DATABASE_URL") or "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    admin_url = admin_url.replace("postgresql+psycopg://", "postgresql://")
    redis_url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/9"
    work = Path(tempfile.mkdtemp(prefix="amsw-sse-bench-"))
    db_url = prepare_database(admin_url).replace("postgresql://", "postgresql+psycopg://")
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": "sse-bench-secret",
        "CREDENTIAL_KEY": CREDENTIAL_KEY,
        "AMSW_INSTANCE_DIR": str(work / "instance"),
        "PYTHONPATH": str(ROOT),
        "LAB_ENABLED": "0",
    }
    env.update(dict(item.split("=", 1) for item in args.env))
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY")})
    os.environ.update(CREDENTIAL_KEY=CREDENTIAL_KEY, AMSW_INSTANCE_DIR=env["AMSW_INSTANCE_DIR"])
    sys.path.insert(0, str(ROOT))
    from app import create_app

    app = create_app(None, {"SQLALCHEMY_DATABASE_URI": db_url, "REDIS_URL": redis_url})
    deployments = seed(app, 1 + args.other_deployments)
    main_dep, others = deployments[0], deployments[1:]
    print(
        f"start: {load()}; server env: {' '.join(args.env) or '(app/gunicorn_config.py defaults)'}"
    )

    server = Server(env, work, args.config)
    client_conn = None
    client = None
    figures: dict = {}
    try:
        cookie = sign_in(server.url)
        probe = PageProbe(server.url, cookie, "/", args.page_interval)
        for _ in range(3):
            probe.once()  # warm-up
        probe.times.clear()
        for _ in range(20):
            probe.once()
        idle_pages = list(probe.times)
        idle_stats = server.stats()
        print(f"pages, no stream open: {summary(idle_pages)}; server {idle_stats}")

        parent, child = mp.get_context("spawn").Pipe()
        client = mp.get_context("spawn").Process(
            target=client_main, args=(child, "127.0.0.1", server.port, cookie), daemon=True
        )
        client.start()
        client_conn = parent
        publisher = Publisher(app)
        for dep in deployments:
            publisher.publish(dep, -1)  # one event each, so a stream's first read is a real one
        afters = {dep: publisher.current_seq(dep) for dep in deployments}

        started = time.monotonic()
        client_conn.send(("open", main_dep, args.viewers, afters[main_dep]))
        client_conn.recv()
        per_other = [args.others // len(others)] * len(others) if others else []
        for i in range(args.others - sum(per_other)):
            per_other[i] += 1
        for dep, count in zip(others, per_other, strict=True):
            client_conn.send(("open", dep, count, afters[dep]))
            client_conn.recv()
        wanted = args.viewers + args.others
        opened = refused = 0
        while time.monotonic() - started < args.connect_wait:
            client_conn.send(("state",))
            state = client_conn.recv()
            opened, refused = state["opened"], state["refused"]
            if opened + refused >= wanted:
                break
            time.sleep(0.2)
        connect_s = time.monotonic() - started
        open_stats = server.stats()
        print(
            f"streams served: {opened} of {wanted} ({refused} refused with 503) after "
            f"{connect_s:.1f} s; server {open_stats}"
        )
        probe.times.clear()
        for _ in range(10):
            probe.once()
        print(f"pages, streams open, no events: {summary(probe.times)}")

        # Publishing
        plan = schedule_for(main_dep, others, args.seconds, args.rate, args.other_rate)
        viewers_of = {main_dep: args.viewers, **dict(zip(others, per_other, strict=True))}
        probe.times.clear()
        probe.failures = 0
        pids = workers_of(server.proc.pid)
        cpu_before = cpu_seconds(pids)
        switches_before = context_switches(pids)
        load_during = os.getloadavg()
        probe.start()
        publisher.run(plan, time.monotonic())
        time.sleep(2)  # the last deliveries
        probe.stop()
        user, system = (now - then for now, then in zip(cpu_seconds(pids), cpu_before, strict=True))
        cpu_used = user + system
        switches = context_switches(pids) - switches_before
        busy_stats = server.stats()
        client_conn.send(("take",))
        received = client_conn.recv()
        main_lat, other_lat = [], []
        per_event: dict[int, list[float]] = {}
        for dep, seq, at in received:
            committed = publisher.committed.get((dep, seq))
            if committed is None:
                continue  # the warm-up event, replayed
            latency = (at - committed) * 1000
            (main_lat if dep == main_dep else other_lat).append(latency)
            if dep == main_dep:
                per_event.setdefault(seq, []).append(latency)
        first = [min(v) for v in per_event.values()]
        spread = [max(v) - min(v) for v in per_event.values()]
        expected_main = sum(1 for _, dep in plan if dep == main_dep) * args.viewers
        expected_other = sum(viewers_of[dep] for _, dep in plan if dep != main_dep)
        print(f"published {len(plan)} events in {args.seconds:.0f} s; {load()}")
        print(
            f"watched deployment ({args.viewers} viewers, {args.rate:g}/s): "
            f"{len(main_lat)} of {expected_main} deliveries; commit to browser {summary(main_lat)}"
        )
        print(
            f"  per event: first viewer {summary(first)}; last minus first viewer {summary(spread)}"
        )
        print(
            f"other deployments ({args.others} viewers, {args.other_rate:g}/s each): "
            f"{len(other_lat)} of {expected_other} deliveries; commit to browser {summary(other_lat)}"
        )
        print(
            f"pages while streaming (GET / every {args.page_interval} s): {summary(probe.times)}, "
            f"{probe.failures} failed"
        )
        deliveries = len(main_lat) + len(other_lat)
        print(
            f"server CPU while publishing: {cpu_used:.1f} s ({user:.1f} user, {system:.1f} system) "
            f"in {args.seconds:.0f} s, {cpu_used * 1e6 / max(1, deliveries):.0f} us and "
            f"{switches / max(1, deliveries):.1f} context switches per delivery; {busy_stats}"
        )

        # Closing tabs: how long does the server hold a closed stream?
        client_conn.send(("close", main_dep, args.close))
        closed = client_conn.recv()
        closed_at = time.monotonic()
        held = close_wait(server.port)
        while held and time.monotonic() - closed_at < 30:
            time.sleep(0.05)
            held = close_wait(server.port)
        released_s = time.monotonic() - closed_at
        print(
            f"closed {closed} streams (no events meanwhile): the server let go of them after "
            f"{released_s:.2f} s" + (f" ({held} still held)" if held else "")
        )
        figures = {
            "served": opened,
            "refused": refused,
            "main_first_p50_ms": statistics.median(first) if first else None,
            "main_spread_p50_ms": statistics.median(spread) if spread else None,
            "wanted": wanted,
            "main_p50_ms": statistics.median(main_lat) if main_lat else None,
            "main_p99_ms": pct(main_lat, 99) if main_lat else None,
            "main_delivered": len(main_lat) / expected_main if expected_main else None,
            "other_p99_ms": pct(other_lat, 99) if other_lat else None,
            "page_idle_p50_ms": statistics.median(idle_pages),
            "page_busy_p50_ms": statistics.median(probe.times) if probe.times else None,
            "page_busy_p99_ms": pct(probe.times, 99) if probe.times else None,
            "page_failed": probe.failures,
            "closed_released_s": released_s,
            "rss_mb_idle": idle_stats["rss_mb"],
            "rss_mb_open": open_stats["rss_mb"],
            "threads_open": open_stats["threads"],
            "server_cpu_s": cpu_used,
            "load_during": [round(x, 2) for x in load_during],
        }
    finally:
        if client_conn is not None:
            try:
                client_conn.send(("quit",))
                client_conn.poll(10) and client_conn.recv()
            except (OSError, EOFError):
                pass
        if client is not None:
            client.join(5)
            if client.is_alive():
                client.kill()
        server.stop()
        from app.extensions import db

        with app.app_context():
            db.engine.dispose()
        psql(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)', admin_url)
        if args.keep:
            print(f"work folder: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"end: {load()}")
    print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in figures.items()}))


if __name__ == "__main__":
    main()
