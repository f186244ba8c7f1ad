"""A whole step run with a canary WinRM password: it must appear nowhere we keep or show things."""

import base64
import io
import logging
import threading

import pytest
from sqlalchemy import inspect, select, text

from app.execution import service, vault
from app.execution.worker.redaction import MASK, NOISY_LOGGERS, REDACTOR, install_log_redaction
from app.extensions import db
from config import Config
from tests.execution import logprobe
from tests.execution.harness import (
    QUEUE,
    LiveServer,
    QueueEnqueue,
    Worker,
    make_lab,
    make_user,
    run_status,
    seed_deployment,
    signed_in_session,
    wait_for,
)

CANARY = "Canary-Pw-7f3a9!"
LAB_LOGGERS = ("app.lab", "psrpcore")
FORMS = (
    CANARY,
    CANARY.encode().hex(),
    base64.b64encode(CANARY.encode()).decode(),
    CANARY.encode("utf-16-le").hex(),
)


def _leaks(blob: str | bytes) -> list[str]:
    if isinstance(blob, bytes):
        blob = blob.decode("latin-1")
    return [form for form in FORMS if form in blob]


def _dump_database() -> str:
    parts = []
    with db.engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                parts.append(repr(tuple(row)))
    return "\n".join(parts)


class RedisMonitor:
    """Everything the Redis server sees during the run (MONITOR)."""

    def __init__(self, url: str) -> None:
        import redis

        self.lines: list[str] = []
        self.client = redis.Redis.from_url(url)
        self.monitor = self.client.monitor()
        self.conn = self.monitor.__enter__()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for item in self.conn.listen():
                self.lines.append(repr(item))
        except Exception:  # noqa: BLE001 - connection closed at the end
            return

    def stop(self) -> str:
        self.client.connection_pool.disconnect()
        self.monitor.connection and self.monitor.connection.disconnect()
        return "\n".join(self.lines)


def test_canary_password_is_nowhere(exec_ctx, exec_db_url, tmp_path, observed, caplog):
    caplog.set_level(logging.DEBUG)
    lab = make_lab(tmp_path, observed, CANARY)
    monitor = RedisMonitor(Config.REDIS_URL) if Config.REDIS_URL else None
    queue = f"{QUEUE}-canary"
    worker = Worker(
        exec_db_url,
        tmp_path / "canary-worker.log",
        loglevel="DEBUG",
        queue=queue,
        extra_env={"AMSW_BROKER_KEEP_PROCESSED": "1"},
    )
    server = None
    try:
        deployment_id = seed_deployment(
            lab, inputs={"seconds": 0.5, "echo_secret": True}, password=CANARY
        )
        run = service.start_step_run(
            deployment_id, "exec_step", None, QueueEnqueue(exec_ctx, queue)
        )
        wait_for(lambda: run_status(run.id) == "succeeded", 60, message="the canary run to succeed")
        assert observed.secrets_seen and set(observed.secrets_seen) == {CANARY}, (
            "secret not delivered"
        )

        make_user()
        server = LiveServer(exec_ctx)
        http = signed_in_session(server.url)
        pages = [
            http.get(
                f"{server.url}/deployments/{deployment_id}/events.json?limit=1000", timeout=10
            ).text
        ]
        with http.get(
            f"{server.url}/deployments/{deployment_id}/events", stream=True, timeout=5
        ) as sse:
            chunk = b""
            for piece in sse.iter_content(chunk_size=None):
                chunk += piece
                if b'"step.finished"' in chunk:
                    break
            pages.append(chunk.decode())
        for path in ("/", f"/deployments/{deployment_id}/steps/exec_step"):
            pages.append(http.get(f"{server.url}{path}", timeout=10).text)
    finally:
        worker.stop()
        lab.stop()
        if server:
            server.stop()
        redis_traffic = monitor.stop() if monitor else ""

    db.session.expire_all()
    assert not _leaks(_dump_database()), "canary in the database"
    assert "echo: ********" in _dump_database(), "the echoed secret was not masked in the events"
    broker_dir = Config.INSTANCE_DIR / "broker"
    broker_files = [p for p in broker_dir.rglob("*") if p.is_file()] if broker_dir.exists() else []
    if Config.REDIS_URL:
        assert "run_node_action" in redis_traffic, "Redis MONITOR captured no task traffic"
        assert not _leaks(redis_traffic), "canary in Redis traffic"
    else:
        assert any(b"run_node_action" in p.read_bytes() for p in broker_files), (
            "no broker messages captured"
        )
    for path in broker_files:
        assert not _leaks(path.read_bytes()), f"canary in broker file {path}"
    log_text = (tmp_path / "canary-worker.log").read_bytes()
    assert b"pypsrp" in log_text or b"Task" in log_text
    assert not _leaks(log_text), "canary in the worker log"
    # The lab (psrpcore server, app.lab) plays the Windows node: what the node logs is not ours.
    ours = [r for r in caplog.records if not r.name.startswith(LAB_LOGGERS)]
    leaked = [f"{r.name}: {r.getMessage()[:200]}" for r in ours if _leaks(r.getMessage())]
    assert not leaked, f"canary in captured logs: {leaked}"
    for page in pages:
        assert not _leaks(page), "canary in a rendered page"
    rows = db.session.execute(select(text("count(*)")).select_from(text("events"))).scalar()
    assert rows > 10


# What a running action holds: the WinRM password and the step's secret fields.
SECRETS = {
    vault.WINRM_PASSWORD: "Winrm-Pw-3c9e!",
    "cloud_access_key": base64.b64encode(bytes(range(64))).decode(),  # as Azure shows one
    "license_key": "LIC-7F3A-99B1-C2D4",
}
SECRET = SECRETS[vault.WINRM_PASSWORD]


def _log_exception(log: logging.Logger) -> None:
    try:
        raise RuntimeError(f"the node refused {SECRET}")
    except RuntimeError:
        log.exception("the action crashed")


LOG_CALLS = {
    "arguments": lambda log: log.warning("password %s", SECRET),
    "message": lambda log: log.warning(f"password {SECRET}"),
    "traceback": _log_exception,
}


@pytest.fixture
def redacted_logger(request):
    """A logger of its own whose handler writes to a string, set up by install_log_redaction."""
    noisy = {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
    logger, stream = logging.getLogger(f"tests.redaction.{request.node.name}"), io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    logger.propagate = False
    install_log_redaction(logger)
    yield logger, stream
    logger.removeHandler(handler)
    for name, level in noisy.items():  # it also quietens protocol loggers, process-wide
        logging.getLogger(name).setLevel(level)


@pytest.mark.parametrize("call", list(LOG_CALLS))
def test_the_redactor_masks_a_held_secret_in_a_log_line(redacted_logger, call):
    logger, stream = redacted_logger
    REDACTOR.hold([SECRET])
    try:
        LOG_CALLS[call](logger)
    finally:
        REDACTOR.release([SECRET])
    output = stream.getvalue()
    assert SECRET not in output and MASK in output, output


@pytest.mark.parametrize("call", list(LOG_CALLS))
def test_a_connection_string_password_is_masked_though_no_action_holds_it(redacted_logger, call):
    logger, stream = redacted_logger
    connection = f"Server=sql1;Database=AMS;User Id=ams;Password={SECRET};Encrypt=True"
    {
        "arguments": lambda: logger.warning("connecting with %s", connection),
        "message": lambda: logger.warning(f"connecting with {connection}"),
        "traceback": lambda: _log_connection_failure(logger, connection),
    }[call]()
    output = stream.getvalue()
    assert SECRET not in output and f"Password={MASK};Encrypt=True" in output, output


def _log_connection_failure(logger, connection: str) -> None:
    try:
        raise ValueError(f"cannot open {connection}")
    except ValueError:
        logger.exception("connection failed")


def test_a_workers_log_masks_the_secrets_its_actions_hold(exec_ctx, exec_db_url, lab, tmp_path):
    deployment_id = seed_deployment(lab, password=SECRETS[vault.WINRM_PASSWORD])
    vault.merge_secrets(
        deployment_id, {k: v for k, v in SECRETS.items() if k != vault.WINRM_PASSWORD}
    )
    queue, log_path = f"{QUEUE}-logs", tmp_path / "log-worker.log"
    worker = Worker(exec_db_url, log_path, queue=queue, includes=("tests.execution.logprobe",))
    try:
        celery = exec_ctx.extensions["celery"]
        celery.send_task("tests.execution.logprobe.log_secrets", (deployment_id,), queue=queue)
        done = logprobe.DONE.encode()
        wait_for(lambda: done in log_path.read_bytes(), 30, 0.1, "the probe task's last line")
    finally:
        worker.stop(graceful=False)
    log_text = log_path.read_text(errors="replace")
    assert not [name for name, value in SECRETS.items() if value in log_text], log_text[-3000:]
    for channel in logprobe.CHANNELS:
        assert log_text.count(f"{channel}: {MASK}") == len(SECRETS), (channel, log_text[-3000:])
