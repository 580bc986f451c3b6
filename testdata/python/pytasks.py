"""Celery app for the real Python worker in the qagen interop tests.

Run from this directory:

    /usr/bin/python3 -m celery -A pytasks worker -Q <queue> -P solo ...

It registers the same task names as qagen's diagnostic tasks. qagen.echo
returns {"worker": "py", ...} instead of x alone, so a test can tell which
worker ran a task on a queue shared with a Go worker.
"""

import time

from interop_common import make_worker_app

app = make_worker_app("pytasks")


@app.task(name="qagen.echo", bind=True)
def echo(self, x):
    return {"worker": "py", "hostname": self.request.hostname, "x": x}


@app.task(name="qagen.add")
def add(x, y):
    return x + y


@app.task(name="qagen.sleep")
def sleep(ms, size=0):
    time.sleep(ms / 1000.0)
    return {"slept_ms": ms, "pad": "x" * size}


@app.task(name="qagen.fail")
def fail(message="qagen.fail called"):
    raise ValueError(message)


@app.task(name="qagen.request", bind=True)
def request(self, *args, **kwargs):
    """Reports what the Python worker saw of a message a Go producer sent."""
    r = self.request
    return {
        "args": list(args),
        "kwargs": kwargs,
        "id": r.id,
        "retries": r.retries,
        "eta": str(r.eta) if r.eta else None,
        "root_id": r.root_id,
        "parent_id": r.parent_id,
        "delivery_info": {k: v for k, v in (r.delivery_info or {}).items() if isinstance(v, (str, int, bool, type(None)))},
        "hostname": r.hostname,
    }
