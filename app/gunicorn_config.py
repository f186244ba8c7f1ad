"""gunicorn's settings for the web service: the command the image runs and `bench/` measures.

`gunicorn --config python:app.gunicorn_config "app:create_app()"`; each setting can still be
overridden on the command line or in GUNICORN_CMD_ARGS.

Every open page of a deployment holds a Server-Sent Events stream, and under gthread a stream holds
a thread for as long as the page is shown, so the thread count is the number of viewers a worker can
serve. Threads waiting on the events hub cost memory only (about 70 kB each here) and no CPU; the hub
wakes only the viewers of the deployment that has news, a few at a time, and a stream whose browser
went away ends at once (app/events/hub.py). With 2 workers x 512 threads, 500 viewers of one
deployment plus 50 of others get events 20-30 ms after the commit at the median, 50-75 ms at p99,
while GET / keeps a p99 under 70 ms (bench/sse_scale.py on 2 shared CPUs, load 4-5). Not gevent:
this module lives in the `app` package, so the arbiter imports the whole app before a gevent worker
could monkey-patch it, and such a worker served 4 streams of 550 and no page. The kernel does not
share connections out evenly between workers, so each worker has room for most of them. Streams may
take at most all but WEB_PAGE_THREADS of a worker's threads (SSE_MAX_STREAMS; a stream beyond gets
503 and its page retries), so pages never queue behind streams.
"""

import os

bind = os.environ.get("WEB_BIND", "0.0.0.0:8000")
worker_class = "gthread"
workers = int(os.environ.get("WEB_WORKERS", "2"))
threads = int(os.environ.get("WEB_THREADS", "512"))
# Threads of each worker that streams leave to pages and API calls.
page_threads = int(os.environ.get("WEB_PAGE_THREADS", "32"))
# Connections a worker holds at once: its streams and pages, and idle keep-alive ones on top.
worker_connections = int(os.environ.get("WEB_WORKER_CONNECTIONS", str(threads + 1000)))
# Server-sent event streams stay open for as long as a page is shown.
timeout = 0
accesslog = "-"


def post_worker_init(worker) -> None:
    """Cap the streams of this worker's app below its thread count (unless SSE_MAX_STREAMS is set)."""
    config = getattr(worker.wsgi, "config", None)
    if config is not None and not config.get("SSE_MAX_STREAMS"):
        config["SSE_MAX_STREAMS"] = max(1, worker.cfg.threads - page_threads)
