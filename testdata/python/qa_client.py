"""Python producer and collector side of the qagen Q&A interop tests.

Usage: /usr/bin/python3 qa_client.py run SPEC_JSON

SPEC_JSON is {"items": [ITEM, ...], "sequential": false}. Each ITEM is

    {"name": "...", "task": "unified" | "chunk" | "batch",
     "args": [...], "kwargs": {...}}

and is sent the way a02_make_qa_para.py sends its tasks:
TASK.apply_async(args=tuple(args), queue=QUEUE) (kwargs= only when given),
with the task objects of celery_tasks.py. In args and kwargs, the strings
"$chunk:NAME", "$config:NAME" and "$chunks:NAME,NAME" stand for the
a02-shaped chunk dicts and the real dataset config dicts built below;
anything else is sent as given (malformed input). With "sequential", each
task is sent only once the previous one has finished (so a seeded fake
LLM serves its faults in a known order).

While waiting, a poller GETs celery-task-meta-<id> of every task every
20 ms and records the statuses it sees (RETRY included) and the first RETRY
meta. Once every task is final, each is read with AsyncResult.get(), and
the results are harvested once more the way a02's collect_results reads
them (its own redis-py client, decode_responses=True, one GET per task,
status SUCCESS and result.success). One JSON line is printed (see
interop_common.py).
"""

import json
import threading
import time
from collections import OrderedDict

import redis

import celery_tasks
from interop_common import BACKEND, QUEUE, TIMEOUT, exc_info, main

app = celery_tasks.app

TASKS = {
    "unified": celery_tasks.generate_qa_unified_async,
    "chunk": celery_tasks.generate_qa_for_chunk_async,
    "batch": celery_tasks.generate_qa_for_batch_async,
}

# --- the dataset config dicts a02 sends (config.py DatasetConfig + a02) ----


def dataset_config(key):
    """DatasetConfig.get_dataset_dict(key) plus a02's title_column."""
    base = {
        "cc_news": OrderedDict([
            ("name", "CC-News（英語ニュース）"),
            ("icon", "🌐"),
            ("description", "英語ニュース記事のデータセット"),
            ("file", "OUTPUT/preprocessed_cc_news.csv"),
            ("hf_dataset", "cc_news"),
            ("hf_config", None),
            ("download_url", None),
            ("split", "train"),
            ("text_field", "text"),
            ("title_field", "title"),
            ("text_column", "Combined_Text"),
            ("sample_size", 500),
            ("min_text_length", 100),
            ("chunk_size", 300),
            ("qa_per_chunk", 5),
            ("lang", "en"),
        ]),
        "wikipedia_ja": OrderedDict([
            ("name", "Wikipedia日本語版"),
            ("icon", "📚"),
            ("description", "日本語Wikipediaの記事データ"),
            ("file", "OUTPUT/preprocessed_wikipedia_ja.csv"),
            ("hf_dataset", "wikimedia/wikipedia"),
            ("hf_config", "20231101.ja"),
            ("download_url", None),
            ("split", "train"),
            ("text_field", "text"),
            ("title_field", "title"),
            ("text_column", "Combined_Text"),
            ("sample_size", 1000),
            ("min_text_length", 200),
            ("chunk_size", 250),
            ("qa_per_chunk", 3),
            ("lang", "ja"),
        ]),
    }[key]
    cfg = dict(base)
    # a02 re-sets text_column and lang, then adds title_column.
    cfg["text_column"] = "Combined_Text"
    cfg["lang"] = base["lang"]
    cfg["title_column"] = "title"
    return cfg


# --- a02-shaped chunk dicts ------------------------------------------------

EN_TRANSPORT = [
    "The city council approved a new budget for public transport on Tuesday.",
    "The plan adds forty electric buses to the existing fleet by next spring.",
    "Officials said the buses were chosen because they cost less to maintain than diesel models.",
    "Commuters in the northern districts will wait for shorter times than before.",
    "The new routes can be used to reach the hospital and the university without changing lines.",
    "Funding comes from a regional climate grant and higher parking fees.",
    "Critics argued that the fee increase will hurt small shops in the centre.",
    "The mayor promised to review the impact on local businesses after one year.",
]

EN_HARBOUR = [
    "A storm closed the harbour for two days last week.",
    "Fishing boats stayed in port while waves reached six metres.",
    "The coast guard rescued three sailors whose yacht lost its mast.",
    "Harbour workers repaired the damaged pier on Sunday.",
    "Ferries resumed their normal schedule on Monday morning.",
    "Local hotels reported fewer cancellations than expected.",
]

JA_FUJI = [
    "富士山は静岡県と山梨県にまたがる活火山である。",
    "標高は3776メートルで、日本で最も高い山として知られている。",
    "山頂付近は夏でも気温が低いため、登山者は防寒具を用意する必要がある。",
    "富士山は古くから信仰の対象とされ、多くの絵画や文学の題材となってきた。",
    "2013年には世界文化遺産に登録された。",
    "周辺の湖は観光地として利用されている。",
]

JA_SHINKANSEN = [
    "新幹線は日本の高速鉄道である。",
    "最初の路線は1964年に東京と新大阪の間で開業した。",
    "在来線より速く、定時運行の正確さでも知られている。",
    "車両は地震を検知すると自動的に停止する仕組みを備えている。",
]

JA_SHINKANSEN_2 = [
    "現在は北海道から九州までの各地に路線が延びている。",
    "多くの利用者が出張や旅行に新幹線を利用している。",
    "車内販売や指定席の予約もスマートフォンでできる。",
]


def doc_id(dataset, idx, title):
    # a02: f"{dataset_type}_{idx}_{str(row[title_column])[:30]}"
    return "%s_%d_%s" % (dataset, idx, str(title)[:30])


def a02_chunk(dataset, idx, title, i, sentences, tokens, ctype, joiner=" "):
    did = doc_id(dataset, idx, title)
    return OrderedDict([
        ("id", "%s_chunk_%d" % (did, i)),
        ("text", joiner.join(sentences)),
        ("tokens", tokens),
        ("type", ctype),
        ("sentences", list(sentences)),
        ("doc_id", did),
        ("doc_idx", idx),
        ("chunk_idx", i),
        ("dataset_type", dataset),
    ])


def merged(first, second):
    """merge_small_chunks: a copy of the first piece with merged,
    original_chunks, the texts joined by a blank line and chunk_idx "a-b";
    tokens stay the first piece's (stale)."""
    m = OrderedDict(first)
    m["merged"] = True
    m["original_chunks"] = [first["id"]]
    m["text"] = first["text"] + "\n\n" + second["text"]
    m["original_chunks"].append(second["id"])
    m["chunk_idx"] = "%s-%s" % (first["chunk_idx"], second["chunk_idx"])
    return m


def build_chunks():
    transport = "City Council Approves Transport Budget for Electric Buses"
    harbour = "Storm Closes Harbour"
    c = {
        # tokens > 150: qa_per_chunk + 1
        "en_long": a02_chunk("cc_news", 0, transport, 0, EN_TRANSPORT, 210, "paragraph"),
        # 50 <= tokens <= 150: qa_per_chunk
        "en_mid": a02_chunk("cc_news", 3, harbour, 0, EN_HARBOUR, 120, "paragraph"),
        # tokens < 50: max(1, qa_per_chunk - 1)
        "en_short": a02_chunk("cc_news", 3, harbour, 1, EN_HARBOUR[:5], 42, "sentence_group"),
        "en_edge50": a02_chunk("cc_news", 3, harbour, 2, EN_HARBOUR, 50, "sentence_group"),
        "en_edge150": a02_chunk("cc_news", 0, transport, 1, EN_TRANSPORT[2:], 150, "sentence_group"),
        "ja_long": a02_chunk("wikipedia_ja", 12, "富士山", 0, JA_FUJI, 180, "paragraph", joiner=""),
        "ja_mid": a02_chunk("wikipedia_ja", 12, "富士山", 3, JA_FUJI[:4], 100, "paragraph", joiner=""),
        "ja_short": a02_chunk("wikipedia_ja", 40, "新幹線", 0, JA_SHINKANSEN[:3], 35, "sentence_group", joiner=""),
    }
    # Two small neighbours of one document, merged as --merge-chunks does:
    # chunk_idx "1-2", tokens of the first piece (60: qa_per_chunk pairs).
    p1 = a02_chunk("wikipedia_ja", 40, "新幹線", 1, JA_SHINKANSEN, 60, "sentence_group", joiner="")
    p2 = a02_chunk("wikipedia_ja", 40, "新幹線", 2, JA_SHINKANSEN_2, 45, "sentence_group", joiner="")
    c["ja_merged"] = merged(p1, p2)
    return c


CHUNKS = build_chunks()


def resolve(v):
    if isinstance(v, str):
        if v.startswith("$chunk:"):
            return CHUNKS[v[len("$chunk:"):]]
        if v.startswith("$chunks:"):
            return [CHUNKS[n] for n in v[len("$chunks:"):].split(",")]
        if v.startswith("$config:"):
            return dataset_config(v[len("$config:"):])
        return v
    if isinstance(v, list):
        return [resolve(x) for x in v]
    if isinstance(v, dict):
        return {k: resolve(x) for k, x in v.items()}
    return v


# --- watching the result keys -------------------------------------------

FINAL = ("SUCCESS", "FAILURE", "REVOKED")


class Poller(threading.Thread):
    """GETs celery-task-meta-<id> of every task every 20 ms."""

    def __init__(self):
        super().__init__(daemon=True)
        self.rc = redis.Redis.from_url(BACKEND, decode_responses=True)
        self.lock = threading.Lock()
        self.ids = []
        self.seen = {}
        self.retry_meta = {}
        self.stop_at = None
        self.halt = threading.Event()

    def add(self, task_id):
        with self.lock:
            self.ids.append(task_id)
            self.seen[task_id] = []

    def wait_final(self, deadline):
        """Waits until every task has a final state (or the deadline)."""
        while time.time() < deadline:
            with self.lock:
                if all(self.seen[i] and self.seen[i][-1] in FINAL for i in self.ids):
                    return
            time.sleep(0.02)

    def run(self):
        while not self.halt.is_set():
            with self.lock:
                ids = [i for i in self.ids if not (self.seen[i] and self.seen[i][-1] in FINAL)]
            for task_id in ids:
                raw = self.rc.get("celery-task-meta-" + task_id)
                if raw is None:
                    continue
                try:
                    meta = json.loads(raw)
                except ValueError:
                    continue
                status = meta.get("status")
                with self.lock:
                    states = self.seen[task_id]
                    if not states or states[-1] != status:
                        states.append(status)
                    if status == "RETRY" and task_id not in self.retry_meta:
                        self.retry_meta[task_id] = meta
            time.sleep(0.02)


def wait_one(r, deadline):
    try:
        result = r.get(timeout=max(0.1, deadline - time.time()))
        return result, None
    except Exception as exc:  # noqa: BLE001
        return None, exc_info(exc)


# Reads the stored meta of each task for describe().
META = redis.Redis.from_url(BACKEND, decode_responses=True)


def describe(r, item, sent_args, sent_kwargs, sent_at, result, raised, poller):
    raw = META.get("celery-task-meta-" + r.id)
    meta = json.loads(raw) if raw else None
    fresh = app.AsyncResult(r.id)
    return {
        "name": item.get("name"),
        "task": TASKS[item["task"]].name,
        "id": r.id,
        "sent": {"args": sent_args, "kwargs": sent_kwargs},
        "sent_at_ts": sent_at,
        "got_at_ts": time.time(),
        "state": fresh.state,
        "result": result,
        # json.loads keeps the stored key order: the collector sees it so.
        "result_keys": list(result.keys()) if isinstance(result, dict) else None,
        "pair_keys": [list(p.keys()) for p in result.get("qa_pairs", [])]
        if isinstance(result, dict) and isinstance(result.get("qa_pairs"), list) else None,
        "raised": raised,
        "meta": meta,
        "meta_keys": list(meta.keys()) if isinstance(meta, dict) else None,
        "retries": meta.get("retries") if isinstance(meta, dict) else None,
        "states_polled": list(poller.seen.get(r.id, [])),
        "retry_meta": poller.retry_meta.get(r.id),
    }


def a02_collect(ids):
    """Phase 2 of a02's collect_results, as the original reads results."""
    rc = redis.Redis.from_url(BACKEND, decode_responses=True)
    all_qa, failed_ids, error_ids, failed_chunks = [], [], [], []
    completed = 0
    for task_id in ids:
        raw = rc.get("celery-task-meta-%s" % task_id)
        if raw is None:
            error_ids.append(task_id)
            continue
        meta = json.loads(raw)
        status = meta.get("status")
        if status == "SUCCESS":
            completed += 1
            result = meta.get("result")
            if isinstance(result, dict) and result.get("success"):
                all_qa.extend(result.get("qa_pairs", []))
            else:
                failed_ids.append(task_id)
                if isinstance(result, dict):
                    if result.get("chunk_id"):
                        failed_chunks.append(result["chunk_id"])
                    failed_chunks.extend(result.get("chunk_ids") or [])
        elif status == "FAILURE":
            failed_ids.append(task_id)
        else:
            error_ids.append(task_id)
    return {"completed": completed, "qa_pairs": all_qa, "qa_count": len(all_qa),
            "failed_ids": failed_ids, "failed_chunks": failed_chunks, "error_ids": error_ids}


def sc_run(spec_json):
    spec = json.loads(spec_json)
    items = spec["items"]
    sequential = bool(spec.get("sequential"))
    deadline = time.time() + TIMEOUT
    poller = Poller()
    poller.start()
    sent = []
    outcomes = {}

    def send(item):
        task = TASKS[item["task"]]
        args = resolve(item["args"]) if "args" in item else None
        kwargs = resolve(item["kwargs"]) if "kwargs" in item else None
        options = {"queue": QUEUE}
        if args is not None:
            options["args"] = tuple(args)
        if kwargs is not None:
            options["kwargs"] = kwargs
        t0 = time.time()
        r = task.apply_async(**options)
        poller.add(r.id)
        return r, args, kwargs, t0

    try:
        if sequential:
            for item in items:
                r, args, kwargs, t0 = send(item)
                result, raised = wait_one(r, deadline)
                # Let the poller see the final state.
                time.sleep(0.05)
                outcomes[item["name"]] = describe(r, item, args, kwargs, t0, result, raised, poller)
                sent.append(r.id)
        else:
            pending = [(item,) + send(item) for item in items]
            for item, r, args, kwargs, t0 in pending:
                sent.append(r.id)
            # Celery 5.2.6's get() can spend a second per task on results
            # that came in while it waited for another one; wait for every
            # final state first, then get() returns at once.
            poller.wait_final(deadline)
            for item, r, args, kwargs, t0 in pending:
                result, raised = wait_one(r, deadline)
                outcomes[item["name"]] = (item, r, args, kwargs, t0, result, raised)
            time.sleep(0.05)
            for name, (item, r, args, kwargs, t0, result, raised) in list(outcomes.items()):
                outcomes[name] = describe(r, item, args, kwargs, t0, result, raised, poller)
    finally:
        poller.halt.set()
    return {"items": outcomes, "collector": a02_collect(sent)}


def sc_chunks():
    """The fixtures, for the Go side's expectations."""
    return {"chunks": CHUNKS, "configs": {k: dataset_config(k) for k in ("cc_news", "wikipedia_ja")}}


SCENARIOS = {"run": sc_run, "chunks": sc_chunks}

if __name__ == "__main__":
    main(SCENARIOS)
