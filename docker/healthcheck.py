"""Container healthchecks (the image has no curl), run by docker compose; exit 0 when healthy.

`healthcheck.py web`: the sign-in page answers 200 on gunicorn's own address (WEB_BIND).
`healthcheck.py worker`: this container's Celery worker answers a control ping through the broker,
what `celery inspect ping` does, without building the whole Flask app for it every time.
"""

import os
import socket
import sys
import urllib.request
from pathlib import Path

# Run as a script from /app/docker: the application (config.py) lives one folder up.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def web() -> int:
    host, _, port = os.environ.get("WEB_BIND", "0.0.0.0:8000").rpartition(":")
    host = "127.0.0.1" if host in ("", "0.0.0.0", "[::]") else host  # noqa: S104 - parsed, not bound
    with urllib.request.urlopen(f"http://{host}:{port}/login", timeout=5) as response:
        return 0 if response.status == 200 else 1


def worker() -> int:
    from celery import Celery

    from config import Config

    app = Celery("healthcheck")
    app.config_from_object(Config.CELERY)
    node = f"celery@{socket.gethostname()}"
    replies = app.control.ping(destination=[node], timeout=5.0)
    if any(node in reply for reply in replies):
        return 0
    print(f"worker not healthy: {node} did not answer a ping within 5 s", file=sys.stderr)
    return 1


def main() -> int:
    role = sys.argv[1] if len(sys.argv) > 1 else "web"
    try:
        return {"web": web, "worker": worker}[role]()
    except Exception as error:  # noqa: BLE001 - any failure means unhealthy, and says why
        print(f"{role} not healthy: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
