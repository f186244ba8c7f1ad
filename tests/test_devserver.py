"""Issue 21, item 9: `make run`'s Ctrl-C stops every part and ends with a clean message and exit
status 0. The real devserver (web app, worker, beat, lab) runs in a subprocess on free ports and
a private instance folder; Ctrl-C is a SIGINT to its process group, as a terminal sends it."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_ctrl_c_stops_everything_with_status_0(tmp_path):
    env = os.environ | {
        "AMSW_INSTANCE_DIR": str(tmp_path / "instance"),
        "PORT": str(_free_port()),
        "LAB_BASE_PORT": str(_free_port()),
        "LAB_NODES": "2",
        "LAB_PASSWORD": "lab-test-password",
    }
    env.pop("REDIS_URL", None)
    env.pop("DATABASE_URL", None)
    # What `make run` does first: the database, its tables and the first admin.
    setup = subprocess.run(
        [sys.executable, "-m", "flask", "setup"],
        cwd=ROOT,
        env=env | {"FLASK_APP": "app:create_app"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert setup.returncode == 0, setup.stdout[-2000:] + setup.stderr[-2000:]
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.devserver"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, like a terminal's foreground job
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 120
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C stops everything." in line or time.monotonic() > deadline:
                break
        assert any("Ctrl-C stops everything." in x for x in lines), "".join(lines)[-3000:]
        os.killpg(proc.pid, signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    output = "".join(lines) + rest
    assert proc.returncode == 0, output[-3000:]
    assert "Ctrl-C: stopping the web app, the worker, the beat and the lab..." in rest
    assert rest.rstrip().endswith("Stopped. Run `make run` to start again."), rest[-2000:]
    assert "Traceback" not in output, output[-3000:]
    assert "KeyboardInterrupt" not in output
