"""`make run`: the web app, a real Celery worker, the beat (the reaper's schedule, a process of its
own) and the demo lab, stopped together."""

import os
import secrets
import signal
import subprocess
import sys
import time

from config import Config

WEB_PORT = int(os.environ.get("PORT", "5000"))
LAB_NODES = int(os.environ.get("LAB_NODES", "2"))


def _commands(lab_password: str) -> dict[str, list[str]]:
    flask = [sys.executable, "-m", "flask"]
    celery = [sys.executable, "-m", "celery", "-A", "app.execution.worker.main"]
    return {
        "web": [*flask, "run", "--host", "127.0.0.1", "--port", str(WEB_PORT), "--with-threads"],
        "worker": [*celery, "worker", "-P", "threads", "-c", "8", "--loglevel", "INFO"],
        "beat": [
            *celery,
            "beat",
            "--loglevel",
            "INFO",
            "-s",
            str(Config.INSTANCE_DIR / "celerybeat-schedule"),
        ],
        "lab": [
            *flask,
            "lab",
            "serve",
            "--nodes",
            str(LAB_NODES),
            "--port",
            str(Config.LAB_BASE_PORT),
            "--username",
            "labadmin",
            "--password",
            lab_password,
        ],
    }


def _stop(processes: dict[str, subprocess.Popen]) -> None:
    for proc in processes.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    for proc in processes.values():
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main() -> int:
    """Start everything, print where to go, and stop everything on Ctrl-C or if one part dies.

    The parts run in a session of their own, so Ctrl-C reaches this process only: it stops them
    in order (SIGTERM, then SIGKILL after 10 s) instead of each printing its own traceback, says
    so, and exits 0. A part that dies on its own stops the rest and the exit status is 1."""
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    lab_password = os.environ.get("LAB_PASSWORD") or secrets.token_urlsafe(10)
    env = os.environ | {"FLASK_APP": "app:create_app", "PYTHONUNBUFFERED": "1"}
    processes: dict[str, subprocess.Popen] = {}
    try:
        for name, cmd in _commands(lab_password).items():
            processes[name] = subprocess.Popen(cmd, env=env, start_new_session=True)
        time.sleep(3)  # let the parts print their start-up lines first
        print(f"\n  AMS Cluster Wizard: http://127.0.0.1:{WEB_PORT}/")
        print(
            f"  Demo lab: {LAB_NODES} nodes on 127.0.0.1:{Config.LAB_BASE_PORT}+ (HTTP, NTLM/Basic)"
        )
        print(f"  Lab WinRM user: labadmin  password: {lab_password}  (demo lab only)")
        print("  Ctrl-C stops everything.\n", flush=True)
        while all(p.poll() is None for p in processes.values()):
            time.sleep(0.5)
        dead = [n for n, p in processes.items() if p.poll() is not None]
        print(f"Stopping: {', '.join(dead)} exited.", flush=True)
        status = 1
    except KeyboardInterrupt:
        print("\nCtrl-C: stopping the web app, the worker, the beat and the lab...", flush=True)
        status = 0
    # A second Ctrl-C while the parts stop would only leave some of them running.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _stop(processes)
    if status == 0:
        print("Stopped. Run `make run` to start again.", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
