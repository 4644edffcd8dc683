"""Every service answers its health RPC over the real broker, and the stack stops
cleanly."""

from __future__ import annotations

import os
import signal

import psutil
import pytest

from services.api.rpc_client import RpcClient
from services.common.config import amqp_uri, load_config
from services.common.context import RequestContext
from services.common.errors import ServiceUnavailable


@pytest.mark.parametrize("service", ["registry", "store", "cache"])
def test_health(stack, service):
    conf = load_config(["--config-file", str(stack.config)])
    client = RpcClient(amqp_uri(conf), timeout=10)
    try:
        assert client.call(service, "health", RequestContext()) == {
            "service": service,
            "status": "ok",
        }
        with pytest.raises(ServiceUnavailable):
            client.call("nonexistent", "health", RequestContext())
    finally:
        client.close()


def test_registry_that_stops_answering_is_a_503_not_a_hang(stack):
    """A stalled registry (SIGSTOP) makes the call time out into ServiceUnavailable."""
    conf = load_config(["--config-file", str(stack.config)])
    client = RpcClient(amqp_uri(conf), timeout=1.5)
    registries = [
        p
        for p in psutil.Process(stack.process.pid).children(recursive=True)
        if "registry" in p.cmdline()
    ]
    assert registries
    for p in registries:
        p.send_signal(signal.SIGSTOP)
    try:
        with pytest.raises(ServiceUnavailable, match="did not answer in time"):
            client.call("registry", "health", RequestContext())
    finally:
        for p in registries:
            p.send_signal(signal.SIGCONT)
        client.close()
    # the stack recovers: the stalled request is dropped (past its deadline), new ones work
    client = RpcClient(amqp_uri(conf), timeout=10)
    assert client.call("registry", "health", RequestContext())["status"] == "ok"
    client.close()


def test_stack_stops_cleanly(tmp_path, vhost):
    from tests.stack import Stack

    stack = Stack(tmp_path, vhost.transport_url).start()
    children = psutil.Process(stack.process.pid).children(recursive=True)
    assert len(children) >= 4  # registry, store, cache, api (+ its workers)
    assert stack.stop() == 0
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, [p.cmdline() for p in alive]
    assert not os.path.exists(f"/proc/{stack.process.pid}")
