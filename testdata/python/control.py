"""Remote control and events of a qagen Go worker, seen from Python Celery 5.2.6.

Usage: /usr/bin/python3 control.py SCENARIO NODENAME [ARGS...]

The environment is described in interop_common.py; every request goes to
one node (destination=[NODENAME]), so a reply comes back as soon as that
node answers. Each scenario prints one JSON line with what it observed,
except `events`, which also prints progress lines ({"ready": true},
{"stop": true}) the Go test acts on before the final line.
"""

import json
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

from client import app, outcome, send
from interop_common import PREFIX, emit, main, redis_client

REPLY_TIMEOUT = 5.0


def inspect(node, timeout=REPLY_TIMEOUT):
    return app.control.inspect(destination=[node], timeout=timeout)


def ask(node, method, *args, **kwargs):
    """app.control.<method>(*args, **kwargs) to node alone: its replies."""
    return getattr(app.control, method)(*args, destination=[node], reply=True, timeout=REPLY_TIMEOUT, **kwargs)


def of(node, reply):
    """The value a node answered in an inspect reply ({node: value})."""
    return (reply or {}).get(node)


def poll(fn, timeout, interval=0.05):
    """Call fn until it returns something true or timeout passes."""
    deadline = time.time() + timeout
    while True:
        v = fn()
        if v or time.time() >= deadline:
            return v
        time.sleep(interval)


def active_ids(node):
    return [a["id"] for a in of(node, inspect(node).active()) or []]


# --- generic ---------------------------------------------------------------

def sc_control(node, method, args_json="[]", kwargs_json="{}"):
    """app.control.<method>(*args, destination=[node], reply=True, **kwargs)."""
    return {"replies": ask(node, method, *json.loads(args_json), **json.loads(kwargs_json))}


def sc_inspect(node, method, args_json="[]"):
    """app.control.inspect(destination=[node]).<method>(*args)."""
    return {"reply": getattr(inspect(node), method)(*json.loads(args_json))}


def sc_addressing(cases_json):
    """broadcast('ping') with pattern/matcher, and with destination=[]:
    which nodes answer, next to the nodes kombu's own matching selects
    (kombu.pidbox.Node.handle_message: a falsy destination means every
    node; pcre is re.match, anchored at the start; glob is fnmatch)."""
    from kombu.matcher import match

    nodes = sorted((app.control.inspect(timeout=1.0).ping() or {}).keys())
    out = {"nodes": nodes, "cases": []}
    for matcher, pattern in json.loads(cases_json):
        replies = app.control.broadcast("ping", reply=True, timeout=1.0, pattern=pattern, matcher=matcher)
        out["cases"].append({
            "what": "%s %s" % (matcher, pattern),
            "got": sorted(n for r in replies or [] for n in r),
            "want": [n for n in nodes if match(n, pattern, matcher)],
        })
    replies = app.control.broadcast("ping", reply=True, timeout=1.0, destination=[])
    out["cases"].append({"what": "destination=[]", "got": sorted(n for r in replies or [] for n in r), "want": nodes})
    return out


def sc_stats_sum():
    """The pre-flight check of a Python producer: total pool size of every
    worker that answers within 2 s."""
    stats = app.control.inspect(timeout=2.0).stats() or {}
    return {
        "nodes": sorted(stats),
        "max_concurrency": {n: s["pool"]["max-concurrency"] for n, s in stats.items()},
        "sum": sum(s["pool"]["max-concurrency"] for s in stats.values()),
    }


# --- revoke ----------------------------------------------------------------

def sc_revoke_eta(node, countdown="3"):
    """Revoke a task the worker holds for its ETA; it ends REVOKED when due."""
    eta = datetime.now(timezone.utc) + timedelta(seconds=float(countdown))
    r = send("qagen.echo", args=["never"], eta=eta)

    def entry():
        for s in of(node, inspect(node).scheduled()) or []:
            if s.get("request", {}).get("id") == r.id:
                return s
        return None

    scheduled = poll(entry, float(countdown) - 1)
    replies = ask(node, "revoke", r.id)
    revoked_at = time.time()
    state_after_revoke = app.AsyncResult(r.id).state
    listed = r.id in (of(node, inspect(node).revoked()) or [])
    out = outcome(r)
    eta_seen = None
    if scheduled and scheduled.get("eta"):
        eta_seen = datetime.fromisoformat(scheduled["eta"]).timestamp()
    return {
        "id": r.id, "outcome": out, "eta_ts": eta.timestamp(), "scheduled": scheduled,
        "scheduled_eta_ts": eta_seen, "replies": replies, "revoked_at_ts": revoked_at,
        "state_after_revoke": state_after_revoke, "listed_as_revoked": listed,
    }


def sc_revoke_first(node):
    """Revoke an id no worker has seen yet, then send a task with that id."""
    task_id = str(uuid.uuid4())
    replies = ask(node, "revoke", task_id)
    r = send("qagen.echo", args=["never"], task_id=task_id)
    return {"id": task_id, "replies": replies, "outcome": outcome(r)}


def sc_terminate(node):
    """revoke(terminate=True) of a running qagen.sleep(30000) on a -c 1 worker,
    then another task on the freed slot."""
    r = send("qagen.sleep", args=[30000])
    running = poll(lambda: r.id in active_ids(node), 15)
    t0 = time.time()
    replies = ask(node, "revoke", r.id, terminate=True, signal="SIGTERM")
    out = outcome(r, timeout=15)
    t1 = time.time()
    nxt = outcome(send("qagen.add", args=[1, 2]), timeout=15)
    t2 = time.time()
    return {
        "id": r.id, "was_active": bool(running), "replies": replies, "outcome": out,
        "revoked_after_s": t1 - t0, "next": nxt, "next_after_s": t2 - t1,
        "active_after": of(node, inspect(node).active()),
    }


# --- other control commands ---------------------------------------------------

def sc_rate_limit(node, limit="2/s", n="10"):
    n = int(n)
    replies = ask(node, "rate_limit", "qagen.add", limit)
    unknown = ask(node, "rate_limit", "qagen.nope", "1/s")
    registered = of(node, inspect(node).registered())
    t0 = time.time()
    rs = [send("qagen.add", args=[i, i]) for i in range(n)]
    outs = [outcome(r) for r in rs]
    elapsed = time.time() - t0
    done = sorted(o["date_done_ts"] for o in outs if o["date_done_ts"] is not None)
    off = ask(node, "rate_limit", "qagen.add", "0")
    return {
        "replies": replies, "unknown_task": unknown, "disable": off, "registered": registered,
        "results": outs, "elapsed_s": elapsed, "spread_s": done[-1] - done[0] if done else None,
    }


def sc_time_limit(node):
    replies = ask(node, "time_limit", "qagen.sleep", soft=1, hard=2)
    unknown = ask(node, "time_limit", "qagen.nope", soft=1)
    t0 = time.time()
    out = outcome(send("qagen.sleep", args=[5000]), timeout=20)
    elapsed = time.time() - t0
    short = outcome(send("qagen.sleep", args=[100]), timeout=20)
    return {"replies": replies, "unknown_task": unknown, "outcome": out, "elapsed_s": elapsed, "short": short}


def max_concurrency(node):
    return of(node, inspect(node).stats())["pool"]["max-concurrency"]


def peak_active(node, ids, until):
    """The most of ids seen running at once, polling until `until` returns true."""
    peak = 0
    while not until(peak):
        peak = max(peak, len(set(ids) & set(active_ids(node))))
        time.sleep(0.05)
    return peak


def sc_pool(node):
    """pool_grow / pool_shrink on a worker started with -c 1."""
    before = max_concurrency(node)
    grow = ask(node, "pool_grow", 2)
    after_grow = max_concurrency(node)
    rs = [send("qagen.sleep", args=[2500]) for _ in range(3)]
    deadline = time.time() + 4
    grown_peak = peak_active(node, [r.id for r in rs], lambda p: p >= 3 or time.time() > deadline)
    grown = [outcome(r) for r in rs]
    shrink = ask(node, "pool_shrink", 2)
    after_shrink = max_concurrency(node)
    rs = [send("qagen.sleep", args=[800]) for _ in range(2)]
    ids = [r.id for r in rs]
    shrunk_peak = peak_active(node, ids, lambda p: all(app.AsyncResult(i).ready() for i in ids))
    shrunk = [outcome(r) for r in rs]
    return {
        "before": before, "grow": grow, "after_grow": after_grow, "grown_peak": grown_peak, "grown": grown,
        "shrink": shrink, "after_shrink": after_shrink, "shrunk_peak": shrunk_peak, "shrunk": shrunk,
    }


def queue_names(node):
    return sorted(q["name"] for q in of(node, inspect(node).active_queues()) or [])


def sc_consumers(node, other):
    add = ask(node, "add_consumer", other)
    queues_added = queue_names(node)
    on_other = outcome(send("qagen.echo", args=["other"], queue=other), timeout=15)
    cancel = ask(node, "cancel_consumer", other)
    queues_cancelled = queue_names(node)
    # A BRPOP the worker issued before the cancel (1 s timeout) may still
    # wait on the queue; only what is sent after it ends must stay put.
    time.sleep(1.5)
    late = send("qagen.echo", args=["not consumed"], queue=other)
    time.sleep(2.0)
    late_state = app.AsyncResult(late.id).state
    waiting = sum(redis_client().llen(PREFIX + other + s) for s in ("", "\x06\x163", "\x06\x166", "\x06\x169"))
    main = outcome(send("qagen.echo", args=["main"]), timeout=15)
    return {
        "add": add, "queues_added": queues_added, "on_other": on_other, "cancel": cancel,
        "queues_cancelled": queues_cancelled, "late_state": late_state, "late_waiting": waiting, "main": main,
    }


# --- events --------------------------------------------------------------------

class Capture:
    """A real celery.events Receiver in a thread, feeding celery.events.state.State."""

    def __init__(self):
        self.events = []
        self.cond = threading.Condition()
        self.state = app.events.State()
        self.probe_host = "probe_%s@interop" % uuid.uuid4().hex[:8]
        self.conn = app.connection_for_read()
        self.recv = app.events.Receiver(self.conn, handlers={"*": self._on_event})
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _on_event(self, event):
        with self.cond:
            if event.get("hostname") != self.probe_host:
                self.state.event(event)
            self.events.append(event)
            self.cond.notify_all()

    def _run(self):
        try:
            self.recv.capture(limit=None, timeout=None, wakeup=False)
        except Exception as exc:  # noqa: BLE001
            self.error = repr(exc)

    def start(self):
        """Start and wait until the subscription is live: a probe event the
        receiver sees itself proves it."""
        self.thread.start()
        with app.connection_for_write() as conn:
            dispatcher = app.events.Dispatcher(conn, hostname=self.probe_host, enabled=True)
            deadline = time.time() + 15
            while time.time() < deadline:
                dispatcher.send("qagen-probe")
                if self.wait(lambda e: e.get("hostname") == self.probe_host, 0.2):
                    dispatcher.close()
                    return
            dispatcher.close()
        raise RuntimeError("the event receiver saw none of its probes (%s)" % self.error)

    def wait(self, pred, timeout):
        deadline = time.time() + timeout
        with self.cond:
            while True:
                for e in self.events:
                    if pred(e):
                        return e
                left = deadline - time.time()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def of(self, node):
        with self.cond:
            return [dict(e) for e in self.events if e.get("hostname") == node]

    def alive(self, node):
        with self.cond:
            w = self.state.workers.get(node)
            return bool(w and w.alive)

    def task_state(self, task_id):
        with self.cond:
            t = self.state.tasks.get(task_id)
            return t.state if t is not None else None

    def stop(self):
        self.recv.should_stop = True
        self.thread.join(5)


def is_event(node, typ, task_id=None, after=None):
    def pred(e):
        return (e.get("hostname") == node and e.get("type") == typ
                and (task_id is None or e.get("uuid") == task_id)
                and (after is None or e.get("local_received", 0) > after))
    return pred


def sc_events(node, mode):
    """The Go worker's events as a real Receiver and State see them.

    mode "sigterm": tasks, then {"stop": true} asks the Go test to SIGTERM
    the worker. mode "shutdown": app.control.broadcast('shutdown') instead.
    Both wait for worker-offline. The worker is started by the Go test once
    {"ready": true} is printed, so worker-online is not missed.
    """
    cap = Capture()
    cap.start()
    emit({"ready": True})
    out = {"mode": mode}
    out["online_seen"] = bool(cap.wait(is_event(node, "worker-online"), 20))
    out["alive_after_online"] = cap.alive(node)
    ids = {}
    if mode == "sigterm":
        rs = {
            "add": send("qagen.add", args=[2], kwargs={"y": 3}),
            "fail": send("qagen.fail", args=["boom"]),
            "flaky": send("qagen.flaky", args=[1]),
        }
        ids = {k: r.id for k, r in rs.items()}
        out["outcomes"] = {k: outcome(r) for k, r in rs.items()}
        last = None
        for typ, tid in (("task-succeeded", ids["add"]), ("task-failed", ids["fail"]),
                         ("task-succeeded", ids["flaky"])):
            e = cap.wait(is_event(node, typ, tid), 10)
            if e is not None:
                last = max(last or 0, e["local_received"])
        # A heartbeat sent after the tasks: it counts them as processed.
        hb = cap.wait(is_event(node, "worker-heartbeat", after=last or time.time()), 6)
        out["heartbeat_after_tasks"] = hb
        out["task_states"] = {k: cap.task_state(v) for k, v in ids.items()}
    else:
        out["heartbeat_after_online"] = cap.wait(is_event(node, "worker-heartbeat"), 6)
    out["alive_before_stop"] = cap.alive(node)
    out["alive_workers"] = sorted(w.hostname for w in cap.state.alive_workers())
    if mode == "sigterm":
        emit({"stop": True})
    else:
        out["shutdown_replies"] = app.control.broadcast("shutdown", destination=[node])
    out["offline_seen"] = bool(cap.wait(is_event(node, "worker-offline"), 30))
    out["alive_after_offline"] = cap.alive(node)
    cap.stop()
    out["ids"] = ids
    out["events"] = cap.of(node)
    out["receiver_error"] = cap.error
    return out


def sc_events_toggle(node):
    """enable_events / disable_events on a worker started without -E."""
    cap = Capture()
    cap.start()

    def task_events(task_id):
        return sorted(e["type"] for e in cap.of(node) if e.get("uuid") == task_id)

    out = {}
    r = send("qagen.echo", args=["before"])
    out["before"] = outcome(r)
    time.sleep(0.5)
    out["before_events"] = task_events(r.id)
    out["enable"] = ask(node, "enable_events")
    out["enable_again"] = ask(node, "enable_events")
    r = send("qagen.echo", args=["during"])
    out["during"] = outcome(r)
    cap.wait(is_event(node, "task-succeeded", r.id), 5)
    out["during_events"] = task_events(r.id)
    out["disable"] = ask(node, "disable_events")
    out["disable_again"] = ask(node, "disable_events")
    r = send("qagen.echo", args=["after"])
    out["after"] = outcome(r)
    time.sleep(0.5)
    out["after_events"] = task_events(r.id)
    cap.stop()
    out["receiver_error"] = cap.error
    return out


SCENARIOS = {
    "control": sc_control,
    "inspect": sc_inspect,
    "stats_sum": sc_stats_sum,
    "addressing": sc_addressing,
    "revoke_eta": sc_revoke_eta,
    "revoke_first": sc_revoke_first,
    "terminate": sc_terminate,
    "rate_limit": sc_rate_limit,
    "time_limit": sc_time_limit,
    "pool": sc_pool,
    "consumers": sc_consumers,
    "events": sc_events,
    "events_toggle": sc_events_toggle,
}

if __name__ == "__main__":
    main(SCENARIOS)
