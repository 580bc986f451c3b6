"""Configuration module for the real `celery` command line in the interop tests.

The tests run, from this directory,

    /usr/bin/python3 -m celery -b <broker> --config celeryconfig_interop inspect stats -j -d <node>

The CLI has no option for broker transport options, so kombu's
global_keyprefix (QAGEN_IT_PREFIX, see interop_common.py) comes from here:
with it the pidbox channels carry the test's prefix and the command sees
only that test's worker.
"""

import os

_prefix = os.environ.get("QAGEN_IT_PREFIX", "")
if _prefix:
    broker_transport_options = {"global_keyprefix": _prefix}

accept_content = ["json"]
result_serializer = "json"
task_serializer = "json"
