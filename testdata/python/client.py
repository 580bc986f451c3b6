"""Python Celery 5.2.6 client side of the qagen interop tests.

Usage: /usr/bin/python3 client.py SCENARIO [ARGS...]

The environment is described in interop_common.py. Each scenario prints one
JSON line with what it observed; internal/interop asserts on it.
"""

import base64
import json
import time
import uuid
from datetime import datetime, timedelta, timezone

from interop_common import (PREFIX, QUEUE, TIMEOUT, exc_info, main, make_app,
                            redis_client)

app = make_app()


def aware(dt):
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt


def describe(task_id, raised=None, result=None, got=False):
    """State, stored meta and the outcome of get() for one task id."""
    fresh = app.AsyncResult(task_id)
    meta = fresh.backend.get_task_meta(task_id)
    dd = aware(fresh.date_done) if fresh.ready() else None
    return {
        "id": task_id,
        "got": got,
        "result": result,
        "raised": raised,
        "state": fresh.state,
        "traceback": fresh.traceback,
        "date_done": dd.isoformat() if dd else None,
        "date_done_ts": dd.timestamp() if dd else None,
        "worker": meta.get("worker"),
        "retries": meta.get("retries"),
    }


def outcome(r, timeout=TIMEOUT, **kw):
    """Wait for r with get(timeout=...) and describe what happened."""
    try:
        result = r.get(timeout=timeout, **kw)
    except Exception as exc:  # noqa: BLE001
        out = describe(r.id, raised=exc_info(exc))
        out["raised_is_value_error"] = isinstance(exc, ValueError)
        return out
    return describe(r.id, result=result, got=True)


def send(name, args=None, kwargs=None, queue=None, a=None, **options):
    return (a or app).send_task(name, args=args, kwargs=kwargs, queue=queue or QUEUE, **options)


def probe_envelope(a, name, args, **options):
    """Publish to a queue nobody consumes and return the raw envelope."""
    probe = QUEUE + "_probe_" + uuid.uuid4().hex[:6]
    a.send_task(name, args=args, queue=probe, **options)
    rc = redis_client()
    keys = [PREFIX + probe + suffix for suffix in ("", "\x06\x163", "\x06\x166", "\x06\x169")]
    raw = None
    for k in keys:
        raw = rc.rpop(k)
        if raw:
            break
    rc.delete(*keys)
    rc.delete(PREFIX + "_kombu.binding." + probe)
    if raw is None:
        raise RuntimeError("probe message not found in " + probe)
    env = json.loads(raw)
    body = base64.b64decode(env["body"])
    return env, body


# --- scenario 1 -----------------------------------------------------------

def sc_args():
    rs = {
        "args": send("qagen.add", args=[2, 3]),
        "kwargs": send("qagen.add", kwargs={"x": 2, "y": 3}),
        "mixed": send("qagen.add", args=[2], kwargs={"y": 3}),
        "bigint": send("qagen.add", args=[2 ** 70, 1]),
        "float": send("qagen.add", args=[1.5, 2.25]),
    }
    out = {k: outcome(r) for k, r in rs.items()}
    out["bigint_expected"] = str(2 ** 70 + 1)
    out["bigint_got"] = str(out["bigint"]["result"])
    return out


def sc_protocol(version):
    version = int(version)
    a = make_app("proto%d" % version, task_protocol=version)
    env, body = probe_envelope(a, "qagen.add", [20, 22])
    decoded = json.loads(body)
    t0 = time.time()
    rs = {
        "args": send("qagen.add", args=[20, 22], a=a),
        "kwargs": send("qagen.add", args=[20], kwargs={"y": 22}, a=a),
        "countdown": send("qagen.echo", args=["later"], countdown=1, a=a),
        "expired": send("qagen.echo", args=["never"], expires=-1, a=a),
    }
    out = {k: outcome(r) for k, r in rs.items()}
    out["sent_at_ts"] = t0
    out["probe"] = {
        "headers_task": env["headers"].get("task"),
        "body_is_object": isinstance(decoded, dict),
        "body_task": decoded.get("task") if isinstance(decoded, dict) else None,
    }
    return out


def sc_compression():
    payload = {"text": "compress me " * 200 + "日本語 ✓", "n": list(range(50))}
    out = {"payload": payload}
    variants = {
        "per_call": (make_app("c_call"), {"compression": "gzip"}),
        "per_call_bzip2": (make_app("c_bz2"), {"compression": "bzip2"}),
        "per_call_lzma": (make_app("c_lzma"), {"compression": "lzma"}),
        "protocol1_gzip": (make_app("c_v1", task_protocol=1), {"compression": "gzip"}),
        "task_compression_setting": (make_app("c_task", task_compression="gzip"), {}),
        "result_compression_setting": (make_app("c_result", result_compression="gzip"), {}),
    }
    for name, (a, opts) in variants.items():
        env, body = probe_envelope(a, "qagen.echo", [payload], **opts)
        r = send("qagen.echo", args=[payload], a=a, **opts)
        o = outcome(r)
        out[name] = {
            "header_compression": env["headers"].get("compression"),
            "outcome": o,
            "equal": o["result"] == payload,
        }
    return out


def sc_countdown():
    t0 = datetime.now(timezone.utc)
    r = send("qagen.echo", args=["countdown"], countdown=2)
    time.sleep(max(0.0, 1.0 - (datetime.now(timezone.utc) - t0).total_seconds()))
    checked = time.time()
    state_at_1s = app.AsyncResult(r.id).state
    out = outcome(r)
    out["sent_at_ts"] = t0.timestamp()
    out["state_at_1s"] = state_at_1s
    out["state_checked_at_ts"] = checked
    out["timezone"] = str(app.conf.timezone)
    return out


def sc_expires():
    past = datetime.now(timezone.utc) - timedelta(minutes=5)
    rs = {
        "minus_one": send("qagen.echo", args=["never"], expires=-1),
        "past_datetime": send("qagen.echo", args=["never"], expires=past),
        # Still valid when received, expired by the time its ETA comes.
        "expires_before_eta": send("qagen.echo", args=["never"], countdown=2, expires=1),
        "future": send("qagen.echo", args=["in time"], expires=60),
    }
    out = {k: outcome(r) for k, r in rs.items()}
    out["timezone"] = str(app.conf.timezone)
    return out


def sc_fail():
    return outcome(send("qagen.fail", args=["boom"]))


def sc_flaky(failures):
    seen = []
    r = send("qagen.flaky", args=[int(failures)])
    out = outcome(r, on_message=lambda meta: seen.append(meta.get("status")))
    out["states_seen"] = seen
    return out


UNICODE_CASES = {
    "text": "日本語テキスト ✓ “quotes” Ünïcødé",
    "emoji": "🎉🚀 👩‍💻 🇯🇵 \U0001F600",
    "escapes": "tab\t newline\n quote\" backslash\\ nul\u0000 ls\u2028 ps\u2029 del\u007f",
    "nested": {
        "ключ": ["值", {"emoji": "😀", "n": 1, "neg": -2.5e-3}],
        "list": [1, "二", None, True, False, 1.5, [], {}],
        "日本": {"深い": {"さらに": ["✓", "✗"]}},
    },
    "mixed_list": ["a", "ü", "€", "𝄞", 0, -1, 12345678901234567890],
    # About 1 MB of JSON (ensure_ascii turns every character into \uXXXX).
    "large": "データ✓ü😀" * 30000,
}


def sc_unicode():
    rs = {k: send("qagen.echo", args=[v]) for k, v in UNICODE_CASES.items()}
    out = {}
    for k, r in rs.items():
        o = outcome(r)
        sent, got = UNICODE_CASES[k], o["result"]
        if k == "large":  # do not print a megabyte
            sent, got = len(sent), len(got) if isinstance(got, str) else got
        out[k] = {"state": o["state"], "raised": o["raised"], "equal": o["result"] == UNICODE_CASES[k],
                  "sent": sent, "got": got}
    return out


def sc_unknown():
    r = send("qagen.does_not_exist", args=[1, 2])
    out = outcome(r)
    rc = redis_client()
    found = None
    deadline = time.time() + 5
    while found is None and time.time() < deadline:
        for raw in rc.lrange(PREFIX + "qagen.dead", 0, -1):
            try:
                rec = json.loads(raw)
            except ValueError:
                continue
            if isinstance(rec, dict) and rec.get("task_id") == r.id:
                found = rec
                break
        if found is None:
            time.sleep(0.1)
    out["dead_found"] = found is not None
    if found is not None:
        msg = found.pop("message", None)
        out["dead_record"] = found
        try:
            env = json.loads(msg)
            out["dead_message_id"] = env["headers"]["id"]
            out["dead_message_task"] = env["headers"]["task"]
        except Exception as exc:  # noqa: BLE001
            out["dead_message_error"] = repr(exc)
    return out


def sc_rawget():
    value = {"k": "v", "n": [1, 2, 3], "u": "ü✓"}
    r = send("qagen.echo", args=[value])
    rc = redis_client()
    key = "celery-task-meta-" + r.id
    raw = None
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        raw = rc.get(key)
        if raw is not None and json.loads(raw).get("status") in ("SUCCESS", "FAILURE", "REVOKED"):
            break
        time.sleep(0.05)
    if raw is None:
        return {"id": r.id, "found": False}
    meta = json.loads(raw)
    return {"id": r.id, "found": True, "meta": meta, "sent": value, "equal": meta.get("result") == value,
            "ttl": rc.ttl(key)}


# --- scenario 2: a kombu >= 5.3 / Celery 5.5 envelope pushed raw ---------

def sc_kombu53(fixture):
    with open(fixture) as f:
        env = json.load(f)
    task_id = str(uuid.uuid4())
    payload = {
        "when": {"__type__": "datetime", "__value__": "2024-01-02T03:04:05.678901+00:00"},
        "day": {"__type__": "date", "__value__": "2024-01-02"},
        "amount": {"__type__": "decimal", "__value__": "1.50"},
        "ref": {"__type__": "uuid", "__value__": {"hex": "00000000000000000000000000000005"}},
        "blob": {"__type__": "bytes", "__value__": "abc"},
        "text": "日本語 ✓",
        "nested": [{"__type__": "datetime", "__value__": "2024-01-02T12:04:05+09:00"}],
    }
    body = json.loads(base64.b64decode(env["body"]))
    body[0] = [payload]
    body[1] = {}
    env["body"] = base64.b64encode(json.dumps(body).encode()).decode()
    tokyo = timezone(timedelta(hours=9))
    sent = datetime.now(tokyo)
    eta = sent + timedelta(seconds=2)
    h = env["headers"]
    h.update({
        "task": "qagen.echo",
        "id": task_id,
        "root_id": task_id,
        "eta": eta.isoformat(),
        "argsrepr": repr((payload,)),
        "kwargsrepr": "{}",
        "replaced_task_nesting": 1,
        "stamped_headers": ["interop_stamp"],
        "stamps": {"interop_stamp": "s1"},
        "interop_stamp": "s1",
    })
    p = env["properties"]
    p["correlation_id"] = task_id
    p["delivery_tag"] = str(uuid.uuid4())
    p["delivery_info"] = {"exchange": "", "routing_key": QUEUE}
    raw = json.dumps(env)
    # Subscribe first, as a client that sent the task would.
    r = app.AsyncResult(task_id)
    app.backend.add_pending_result(r)
    redis_client().lpush(PREFIX + QUEUE, raw)
    time.sleep(max(0.0, 1.0 - (datetime.now(tokyo) - sent).total_seconds()))
    checked = time.time()
    state_at_1s = app.AsyncResult(task_id).state
    out = outcome(r)
    out.update({
        "state_checked_at_ts": checked,
        "sent_at_ts": sent.timestamp(),
        "eta": h["eta"],
        "eta_ts": eta.timestamp(),
        "state_at_1s": state_at_1s,
        "sent": payload,
        "equal": out["result"] == payload,
    })
    return out


# --- generic send / collect (shutdown and crash scenarios) ---------------

def sc_send(spec_json):
    """spec: [{"task", "args", "kwargs", "options", "count"}, ...]; ids per spec."""
    groups = []
    for spec in json.loads(spec_json):
        ids = []
        for _ in range(int(spec.get("count", 1))):
            r = send(spec["task"], args=spec.get("args"), kwargs=spec.get("kwargs"), **spec.get("options", {}))
            ids.append(r.id)
        groups.append(ids)
    return {"ids": groups, "sent_at_ts": time.time()}


def sc_collect(*ids):
    deadline = time.time() + TIMEOUT
    out = {}
    for task_id in ids:
        r = app.AsyncResult(task_id)
        out[task_id] = outcome(r, timeout=max(0.1, deadline - time.time()))
    return {"results": out}


# --- scenario 4: many tasks on a queue shared by a Go and a Python worker -

def sc_shared(count, batch="10", pause="0.03"):
    count, batch, pause = int(count), int(batch), float(pause)
    rs = []
    for i in range(count):
        rs.append(send("qagen.echo", args=[i]))
        if (i + 1) % batch == 0:
            time.sleep(pause)
    deadline = time.time() + TIMEOUT
    results = []
    for i, r in enumerate(rs):
        try:
            res = r.get(timeout=max(0.1, deadline - time.time()))
            results.append({"i": i, "id": r.id, "state": r.state, "result": res})
        except Exception as exc:  # noqa: BLE001
            results.append({"i": i, "id": r.id, "state": app.AsyncResult(r.id).state, "raised": exc_info(exc)})
    return {"results": results}


SCENARIOS = {
    "args": sc_args,
    "protocol": sc_protocol,
    "compression": sc_compression,
    "countdown": sc_countdown,
    "expires": sc_expires,
    "fail": sc_fail,
    "flaky": sc_flaky,
    "unicode": sc_unicode,
    "unknown": sc_unknown,
    "rawget": sc_rawget,
    "kombu53": sc_kombu53,
    "send": sc_send,
    "collect": sc_collect,
    "shared": sc_shared,
}

if __name__ == "__main__":
    main(SCENARIOS)
