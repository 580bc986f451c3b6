"""make demo: the Python producer's way of asking for Q&A pairs, served by qagen.

Chunks are sent exactly as a02_make_qa_para.py sends them
(apply_async(args=(chunk, config, model, provider), queue='qa_generation'))
and collected by reading celery-task-meta-<id> straight from Redis, as its
collector does. One chunk per paragraph here; `qagen generate` does real
chunking (issue 5).
"""
import json
import os
import sys
import time

import redis
from celery import Celery

broker = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
backend = os.environ.get("CELERY_RESULT_BACKEND", broker)
queue = os.environ.get("QAGEN_DEMO_QUEUE", "qa_generation")
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
app = Celery("qa_generation", broker=broker, backend=backend)

DATASETS = {
    "en": {"name": "demo (English)", "lang": "en", "qa_per_chunk": 2, "chunk_size": 300, "text_column": "Combined_Text", "title_column": None},
    "ja": {"name": "demo (日本語)", "lang": "ja", "qa_per_chunk": 2, "chunk_size": 200, "text_column": "Combined_Text", "title_column": None},
}

tasks = []
for lang in ("en", "ja"):
    with open(os.path.join(root, "demo", f"{lang}.txt"), encoding="utf-8") as f:
        paragraphs = [p.strip() for p in f.read().split("\n\n") if p.strip()]
    for i, text in enumerate(paragraphs):
        doc_id = f"demo_{lang}_{i}"
        chunk = {"id": f"{doc_id}_chunk_0", "text": text, "tokens": len(text.split()) if lang == "en" else len(text),
                 "type": "paragraph", "sentences": [], "doc_id": doc_id, "doc_idx": i, "chunk_idx": 0, "dataset_type": f"demo_{lang}"}
        r = app.send_task("celery_tasks.generate_qa_unified_async", args=(chunk, DATASETS[lang], "gemini-2.0-flash", "gemini"), queue=queue)
        tasks.append(r.id)
print(f"   sent {len(tasks)} chunks as celery_tasks.generate_qa_unified_async")

r = redis.Redis.from_url(backend)
deadline = time.time() + 60
results = {}
while len(results) < len(tasks) and time.time() < deadline:
    for tid, raw in zip(tasks, r.mget([f"celery-task-meta-{t}" for t in tasks])):
        if raw:
            meta = json.loads(raw)
            if meta["status"] in ("SUCCESS", "FAILURE"):
                results[tid] = meta
    time.sleep(0.2)
if len(results) < len(tasks):
    sys.exit(f"demo: only {len(results)}/{len(tasks)} results after 60 s")

pairs = [p for m in results.values() if m["status"] == "SUCCESS" and m["result"]["success"] for p in m["result"]["qa_pairs"]]
failed = [m for m in results.values() if m["status"] != "SUCCESS" or not m["result"]["success"]]
print(f"   collected {len(results)} results: {len(pairs)} Q&A pairs, {len(failed)} failed chunks")
for p in pairs[:4] + pairs[-2:]:
    print(f"   [{p['question_type']:<11}] Q: {p['question']}\n{'':17}A: {p['answer'][:110]}")
one = next(iter(results.values()))
print("   a result as stored:", json.dumps({k: one["result"][k] for k in ("success", "chunk_id", "provider", "error", "model")}, ensure_ascii=False))
