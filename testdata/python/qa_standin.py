"""Worker-side stand-in for the Python system's Q&A tasks.

The `qagen generate` end-to-end tests (internal/e2e) run a real Celery
5.2.6 worker with this app in place of the Python system's celery_tasks
module:

    /usr/bin/python3 -m celery -A qa_standin worker -Q <queue> -P solo ...

It serves the task names a02_make_qa_para.py sends
(celery_tasks.generate_qa_unified_async, and the legacy batch task) with
their signatures, and returns the Python contract
{"success", "chunk_id"/"chunk_ids", "qa_pairs", "provider", "error"} built
from the chunk dicts themselves, without any LLM: each answer quotes a
sentence of the chunk. Pairs say provider "python-standin", so a test can
tell who answered. (celery_tasks.py in this directory is the producer-side
stub of the same names; its bodies never run.)
"""

import re

from interop_common import make_worker_app

app = make_worker_app("qa_standin")

PROVIDER = "python-standin"

_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s*")


def _count(chunk, config):
    """The Python worker's pairs per chunk: fewer for short chunks, one more for long ones."""
    base = int(config.get("qa_per_chunk") or 2)
    tokens = int(chunk.get("tokens") or 100)
    if tokens < 50:
        return max(1, base - 1)
    if tokens > 150:
        return base + 1
    return base


def _pairs(chunk, config):
    text = chunk.get("text") or ""
    sentences = [s.strip() for s in _SENTENCE_END.split(text) if s.strip()] or [text]
    ja = config.get("lang") == "ja"
    n = _count(chunk, config)
    out = []
    for i in range(n):
        sentence = sentences[i * len(sentences) // n]
        question = "この文章の%d番目の要点は何ですか？" % (i + 1) if ja else "What is point %d of the text?" % (i + 1)
        out.append({
            "question": question,
            "answer": sentence,
            "question_type": "fact",
            "source_chunk_id": chunk.get("id"),
            "doc_id": chunk.get("doc_id"),
            "dataset_type": chunk.get("dataset_type"),
            "chunk_idx": chunk.get("chunk_idx"),
            "provider": PROVIDER,
        })
    return out


@app.task(name="celery_tasks.generate_qa_unified_async", bind=True, max_retries=3)
def generate_qa_unified_async(self, chunk_data, config, model=None, provider=None):
    return {
        "success": True,
        "chunk_id": chunk_data.get("id"),
        "qa_pairs": _pairs(chunk_data, config),
        "provider": PROVIDER,
        "error": None,
    }


@app.task(name="celery_tasks.generate_qa_for_batch_async", bind=True, max_retries=3)
def generate_qa_for_batch_async(self, chunks, config, model="gemini-2.0-flash"):
    pairs = []
    for chunk in chunks:
        pairs.extend(_pairs(chunk, config))
    return {
        "success": True,
        "chunk_ids": [c.get("id") for c in chunks],
        "qa_pairs": pairs,
        "provider": PROVIDER,
        "error": None,
    }
