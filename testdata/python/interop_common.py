"""Shared helpers for the Python side of the qagen interop tests.

Parameters come from the environment (set by internal/interop):

    QAGEN_IT_BROKER    broker URL (Redis database 14)
    QAGEN_IT_BACKEND   result backend URL
    QAGEN_IT_QUEUE     the test's queue
    QAGEN_IT_PREFIX    kombu global_keyprefix ("" for none)
    QAGEN_IT_VISIBILITY  optional broker visibility_timeout (seconds)
    QAGEN_IT_TZ        optional app timezone (e.g. Asia/Tokyo)
    QAGEN_IT_TIMEOUT   seconds a script may wait for results (default 20)

Every script prints exactly one JSON line on stdout with its observations;
the Go tests assert on it. Diagnostics go to stderr.
"""

import json
import os
import sys
import traceback

from celery import Celery

BROKER = os.environ.get("QAGEN_IT_BROKER", "redis://127.0.0.1:6379/14")
BACKEND = os.environ.get("QAGEN_IT_BACKEND", BROKER)
QUEUE = os.environ.get("QAGEN_IT_QUEUE", "")
PREFIX = os.environ.get("QAGEN_IT_PREFIX", "")
TIMEOUT = float(os.environ.get("QAGEN_IT_TIMEOUT", "20"))


def make_app(name="qagen_interop", **conf):
    app = Celery(name, broker=BROKER, backend=BACKEND)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=False,
        broker_connection_max_retries=3,
        redis_socket_timeout=30,
        redis_socket_connect_timeout=5,
    )
    transport = {}
    if PREFIX:
        transport["global_keyprefix"] = PREFIX
    if os.environ.get("QAGEN_IT_VISIBILITY"):
        transport["visibility_timeout"] = float(os.environ["QAGEN_IT_VISIBILITY"])
    if transport:
        app.conf.broker_transport_options = transport
    if os.environ.get("QAGEN_IT_TZ"):
        app.conf.timezone = os.environ["QAGEN_IT_TZ"]
    app.conf.update(**conf)
    return app


def make_worker_app(name):
    """make_app for `celery -A MODULE worker`: the worker logs to the
    process's own stderr, which the Go test reads."""
    return make_app(name, worker_hijack_root_logger=True, worker_redirect_stdouts=False)


def redis_client():
    import redis

    return redis.Redis.from_url(BROKER)


def exc_info(exc):
    """A JSON-friendly description of an exception raised by get()."""
    cls = type(exc)
    return {
        "type": cls.__name__,
        "module": cls.__module__,
        "qualname": "%s.%s" % (cls.__module__, cls.__qualname__),
        "message": str(exc),
        "args": [a if isinstance(a, (str, int, float, bool, type(None))) else repr(a) for a in exc.args],
    }


def emit(obj):
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def run(main):
    """Run main() and emit its result, or an {"error": ...} line."""
    try:
        out = main()
    except BaseException as exc:  # noqa: BLE001 - report everything to Go
        traceback.print_exc()
        emit({"error": exc_info(exc), "traceback": traceback.format_exc()})
        sys.exit(1)
    emit(out)


def main(scenarios):
    """Run scenarios[sys.argv[1]](*sys.argv[2:]) with run()."""
    if len(sys.argv) < 2 or sys.argv[1] not in scenarios:
        sys.stderr.write("usage: %s {%s} [args...]\n" % (os.path.basename(sys.argv[0]), ",".join(sorted(scenarios))))
        sys.exit(2)
    run(lambda: scenarios[sys.argv[1]](*sys.argv[2:]))
