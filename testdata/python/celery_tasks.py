"""Producer-side stand-in for the Python system's celery_tasks module.

The Q&A interop tests (internal/interop/qa_test.go, via qa_client.py) send
the Q&A tasks the way a02_make_qa_para.py does:

    from celery_tasks import generate_qa_unified_async
    generate_qa_unified_async.apply_async(args=(chunk, config, model, provider), queue=...)

Celery names a task after its module and function, so defining the tasks
here, in a module called celery_tasks, gives the real names
(celery_tasks.generate_qa_unified_async, ...) without an explicit name=,
exactly as in the original. Only the signatures matter: these bodies never
run here (a Go worker consumes the messages), and raise if they ever do.
"""

from interop_common import make_app

app = make_app("qa_generation")


@app.task(bind=True, max_retries=3)
def generate_qa_unified_async(self, chunk_data, config, model=None, provider=None):
    raise NotImplementedError("producer-side stub: a qagen Go worker runs this task")


@app.task(bind=True, max_retries=3)
def generate_qa_for_chunk_async(self, chunk_data, config, model="gemini-2.0-flash"):
    raise NotImplementedError("producer-side stub: a qagen Go worker runs this task")


@app.task(bind=True, max_retries=3)
def generate_qa_for_batch_async(self, chunks, config, model="gemini-2.0-flash"):
    raise NotImplementedError("producer-side stub: a qagen Go worker runs this task")
