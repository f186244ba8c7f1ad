"""The fixed stack alone, for bench/floor.py: Flask on gunicorn -> Celery on Redis -> pypsrp -> lab
-> Redis pub/sub -> an SSE response. No database, no sign-in, no CSRF, no event log: what any product
built on this stack pays per remote action before doing any work of its own."""

import gc
import json
import os
from pathlib import Path

import redis
from celery import Celery
from flask import Flask, Response, stream_with_context
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.wsman import WSMan

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
CHANNEL = "amsw-floor"
SCRIPT = (Path(__file__).resolve().parents[1] / "tests/execution/scripts/exec_echo.ps1").read_text()

celery = Celery("floor", broker=REDIS_URL)
celery.conf.update(
    task_default_queue=os.environ.get("FLOOR_QUEUE", "amsw-floor"),
    task_acks_late=True,
    task_ignore_result=True,
    worker_prefetch_multiplier=1,
)
app = Flask(__name__)
client = redis.Redis.from_url(REDIS_URL)
_pool: RunspacePool | None = None


@celery.task(name="floor.run")
def run(text: str) -> None:
    """The trivial lab action on a reused pool, then a notify (what a product's worker must do)."""
    global _pool
    if _pool is None:
        wsman = WSMan(
            "127.0.0.1",
            port=int(os.environ["FLOOR_LAB_PORT"]),
            ssl=False,
            auth="ntlm",
            username=os.environ["FLOOR_LAB_USER"],
            password=os.environ["FLOOR_LAB_PASSWORD"],
        )
        _pool = RunspacePool(wsman)
        _pool.open()
    ps = PowerShell(_pool)
    ps.add_script(SCRIPT).add_parameters({"Text": text})
    output = ps.invoke()
    client.publish(CHANNEL, json.dumps({"finished": str(output[0])}))


@app.post("/go")
def go():
    celery.send_task("floor.run", ("hi",))
    return "", 204


@app.get("/stream")
def stream():
    pubsub = client.pubsub()
    pubsub.subscribe(CHANNEL)
    pubsub.get_message(timeout=5)  # the subscribe confirmation: listening before the client starts

    def events():
        try:
            yield "retry: 1000\n\n"
            for message in pubsub.listen():
                if message["type"] == "message":
                    yield f"data: {message['data'].decode()}\n\n"
        finally:
            pubsub.close()

    return Response(stream_with_context(events()), mimetype="text/event-stream")


gc.collect()
gc.freeze()  # what the product's create_app does at start (app/setup.py)
