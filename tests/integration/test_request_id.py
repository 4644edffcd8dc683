"""The request id of a call appears in the log lines of the services it went through."""

from __future__ import annotations

import time
import uuid


def test_request_id_reaches_the_registry_log(stack, api):
    resp = api.get(f"/v2/images/{uuid.uuid4()}")  # the registry logs the NotFound
    request_id = resp.headers["x-openstack-request-id"]
    assert request_id.startswith("req-")
    deadline = time.monotonic() + 5
    while request_id not in stack.log.read_text():
        assert time.monotonic() < deadline, "request id never reached the registry log"
        time.sleep(0.1)
    lines = [ln for ln in stack.log.read_text().splitlines() if request_id in ln]
    assert any(" registry:" in ln for ln in lines), lines
