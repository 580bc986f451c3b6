"""make demo: an unmodified Celery 5 client talking to a qagen (Go) worker."""
import json
import os
import time

import redis
from celery import Celery

broker = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
backend = os.environ.get("CELERY_RESULT_BACKEND", broker)
queue = os.environ.get("QAGEN_DEMO_QUEUE", "qagen_demo")
app = Celery("demo", broker=broker, backend=backend)


def show(label, value):
    print(f"   {label:<38} {value}")


r = app.send_task("qagen.add", args=(2, 3), queue=queue)
show("qagen.add(2, 3) ->", r.get(timeout=10))

text = {"chunk": "Celery は分散タスクキューです。", "tags": ["ünïcødé", "✓"], "n": None}
r = app.send_task("qagen.echo", args=(text,), queue=queue)
show("qagen.echo(non-ASCII dict) ->", r.get(timeout=10) == text)

rs = [app.send_task("qagen.sleep", args=(500,), kwargs={"size": 16}, queue=queue) for _ in range(8)]
t0 = time.time()
out = [x.get(timeout=10) for x in rs]
show("8 x qagen.sleep(500ms) in parallel ->", f"{time.time() - t0:.2f}s, slept_ms={out[0]['slept_ms']}")

r = app.send_task("qagen.fail", args=("boom",), queue=queue)
try:
    r.get(timeout=10)
except ValueError as e:
    show("qagen.fail('boom') raises ->", f"{type(e).__name__}({e}) state={r.state}")

r = app.send_task("qagen.flaky", args=(2,), queue=queue)
show("qagen.flaky(2): retried, then ->", r.get(timeout=10))

t0 = time.time()
r = app.send_task("qagen.add", args=(1, 1), queue=queue, countdown=1)
r.get(timeout=10)
show("countdown=1 honoured ->", f"ran after {time.time() - t0:.1f}s")

r = app.send_task("qagen.add", args=(1, 1), queue=queue, expires=-1)
try:
    r.get(timeout=10)
except Exception as e:  # TaskRevokedError
    show("expired task ->", f"{type(e).__name__} state={r.state}")

# The Python producer (a02_make_qa_para.py) reads results straight from Redis.
meta = json.loads(redis.Redis.from_url(backend).get(f"celery-task-meta-{rs[0].id}"))
show("direct GET celery-task-meta-<id> ->", {k: meta[k] for k in ("status", "task_id")})
