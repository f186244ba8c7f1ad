"""The stack's floor: the trivial lab action through Flask (gunicorn) -> Celery (Redis) -> pypsrp -> lab
-> Redis pub/sub -> SSE with none of the product's own work, beside raw pypsrp, alternating.

Run: `REDIS_URL=redis://127.0.0.1:6379/0 python bench/floor.py` (Redis is required). It puts the
product's `added_ms_p50` (bench/remote.py) in proportion: what the fixed stack costs on this machine
before any database write, sign-in or event log. The last line printed is JSON.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.setup import freeze_startup_objects  # noqa: E402
from bench.remote import WORK, RawPool, Stream, free_port, pct  # noqa: E402
from tests.execution import harness, labkit  # noqa: E402
from tests.execution.harness import LAB_PASSWORD, LAB_USER  # noqa: E402

ROUNDS = 60


def main() -> None:
    lab = labkit.start_lab(WORK, ["node1"], LAB_USER, LAB_PASSWORD, labkit.Observed())
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "FLOOR_QUEUE": f"amsw-floor-{uuid.uuid4().hex[:6]}",
        "FLOOR_LAB_PORT": str(lab.ports["node1"]),
        "FLOOR_LAB_USER": LAB_USER,
        "FLOOR_LAB_PASSWORD": LAB_PASSWORD,
    }
    log = open(WORK / "floor.log", "wb")  # noqa: SIM115
    python = sys.executable
    web = harness.spawn_group(
        [python, "-m", "gunicorn", "-k", "gthread", "-w", "1", "--threads", "20", "-b",
         f"127.0.0.1:{port}", "bench.floor_app:app"],
        env,
        log,
    )  # fmt: skip
    worker = harness.spawn_group(
        [python, "-m", "celery", "-A", "bench.floor_app:celery", "worker", "-P", "threads", "-c", "1",
         "-Q", env["FLOOR_QUEUE"], "--without-gossip", "--without-mingle", "-l", "WARNING"],
        env,
        log,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                requests.get(f"{url}/stream", timeout=0.5, stream=True).close()
                break
            except requests.RequestException:
                time.sleep(0.1)
        http = requests.Session()

        def floor_run() -> float:
            sse = Stream(url, "/stream", "")
            try:
                lines = sse.lines()
                next(lines)  # retry: the stream is subscribed
                started = time.perf_counter()
                assert http.post(f"{url}/go", timeout=10).status_code == 204
                for line in lines:
                    if line.startswith("data:") and "finished" in line:
                        return (time.perf_counter() - started) * 1000
            finally:
                sse.close()
            raise RuntimeError("stream ended")

        raw_pool = RawPool(lab.ports["node1"])
        floor_run(), raw_pool.run("exec_echo", {"Text": "hi"})  # warm-up: imports, first pools
        freeze_startup_objects()  # as bench/remote.py, the web and the worker do
        raw, floor = [], []
        for _ in range(ROUNDS):
            raw.append(raw_pool.run("exec_echo", {"Text": "hi"}))
            floor.append(floor_run())
        raw_pool.close()
    finally:
        harness.stop_group(web, timeout=5)
        harness.stop_group(worker, timeout=5)
        lab.stop()
    figures = {
        "raw_p50_ms": statistics.median(raw),
        "floor_p50_ms": statistics.median(floor),
        "floor_p90_ms": pct(floor, 90),
        "floor_added_ms_p50": statistics.median(floor) - statistics.median(raw),
    }
    print(
        "stack floor: POST -> Celery -> pypsrp -> lab -> Redis -> SSE, no database or sign-in; "
        f"raw pypsrp p50 {figures['raw_p50_ms']:.1f} ms, floor p50 {figures['floor_p50_ms']:.1f} ms "
        f"(p90 {figures['floor_p90_ms']:.1f}): added {figures['floor_added_ms_p50']:.1f} ms"
    )
    print(json.dumps({k: round(v, 3) for k, v in figures.items()}))


if __name__ == "__main__":
    main()
