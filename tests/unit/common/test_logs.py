"""The request ids of log lines (services/common/logs.py): oslo.context's store of the
current context is per greenlet and per thread, so concurrent requests never log with
each other's ids; and the transfer summary of the upload/download lines."""

from __future__ import annotations

import subprocess
import sys
import threading

from oslo_context import context as oslo_context

from services.common.logs import set_request_id, transfer_summary


def test_the_store_is_what_oslo_context_reads():
    context = set_request_id("req-a", "req-g", "user", "project")
    assert oslo_context.get_current() is context
    assert context.get_logging_values()["global_request_id"] == "req-g"
    set_request_id(None)
    assert oslo_context.get_current() is None


def test_each_thread_has_its_own():
    set_request_id("req-main")
    seen = {}
    thread = threading.Thread(target=lambda: seen.setdefault("other", oslo_context.get_current()))
    thread.start()
    thread.join()
    assert seen["other"] is None
    assert oslo_context.get_current().request_id == "req-main"
    set_request_id(None)


GREENLETS = """
import {lib}
{patch}
from oslo_context import context as oslo_context
from services.common.logs import set_request_id

seen = []

def request(n):
    set_request_id(f"req-{{n}}")
    {sleep}(0.01)  # another request runs meanwhile
    seen.append(oslo_context.get_current().request_id == f"req-{{n}}")

{spawn_and_wait}
assert seen == [True] * 5, seen
"""


def run_greenlets(lib, patch, sleep, spawn_and_wait):
    code = GREENLETS.format(lib=lib, patch=patch, sleep=sleep, spawn_and_wait=spawn_and_wait)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_each_eventlet_greenthread_has_its_own():
    run_greenlets(
        "eventlet",
        "",
        "eventlet.sleep",
        "[t.wait() for t in [eventlet.spawn(request, n) for n in range(5)]]",
    )


def test_transfer_summary():
    assert transfer_summary(13_287_936, 0.21) == "13287936 bytes in 0.21 s (63.3 MB/s)"
    assert transfer_summary(0, 0.0) == "0 bytes in 0.00 s (0.0 MB/s)"
