"""Every service answers its health RPC over the real broker, and the stack stops
cleanly."""

from __future__ import annotations

import inspect
import os
import signal
import threading
import time

import psutil
import pytest
import requests

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
    registries = stack.processes("registry")
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


def _stop_timed(stack, children, signum=signal.SIGTERM) -> float:
    """SIGTERM to tessera-run, or SIGINT as a terminal's Ctrl-C sends it (to the process
    group: tessera-run's own, as tests/stack.py starts it in a session of its own)."""
    started = time.monotonic()
    if signum == signal.SIGINT:
        os.killpg(stack.process.pid, signum)
    else:
        stack.process.send_signal(signum)
    assert stack.process.wait(timeout=10) == 0
    _, alive = psutil.wait_procs(children, timeout=max(0.1, 5 - (time.monotonic() - started)))
    assert not alive, [p.cmdline() for p in alive]
    return time.monotonic() - started


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_stack_stops_cleanly(tmp_path, vhost, signum):
    """SIGTERM (as `make run` passes it on), or Ctrl-C (SIGINT to the terminal's whole
    foreground process group), ends the gateway, its workers and every nameko service in
    under 5 s, quietly, while requests are in flight: each is answered or refused, never
    a 5xx."""
    from tests.stack import Stack

    stack = Stack(tmp_path, vhost.transport_url).start()
    children = psutil.Process(stack.process.pid).children(recursive=True)
    launched = {p.cmdline()[3] for p in children if "services.launch" in p.cmdline()}
    assert launched == {"registry", "store", "cache"}
    statuses: list = []
    stopping = threading.Event()

    def client():
        session = requests.Session()  # keep-alive connections stay open in the gateway
        while not stopping.is_set():
            try:
                statuses.append(session.get(f"{stack.url}/v2/images", timeout=10).status_code)
            except requests.ConnectionError:
                statuses.append("refused")
                return

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(1)
    try:
        elapsed = _stop_timed(stack, children, signum)
    finally:
        stopping.set()
        for t in threads:
            t.join(timeout=15)
    assert elapsed < 5, elapsed
    assert statuses.count(200) > 4 and set(statuses) <= {200, "refused"}, statuses
    log = stack.logs()
    assert "Traceback" not in log, log[-3000:]
    assert "killing" not in log, log[-3000:]  # no worker, thread or process needed killing
    for name in ("registry", "store", "cache"):
        assert f"stopped the {name} service" in log, log[-3000:]


def test_sigterm_during_an_upload_stops_within_5_s(tmp_path, vhost):
    """An upload still streaming when the stack is told to stop gets a short grace, then
    fails (the client sees the connection end) instead of holding the stop for minutes."""
    from tests.stack import Stack

    stack = Stack(tmp_path, vhost.transport_url).start()
    children = psutil.Process(stack.process.pid).children(recursive=True)
    image = requests.post(
        f"{stack.url}/v2/images", json={"disk_format": "raw", "container_format": "bare"}
    ).json()
    outcome: list = []

    def slow_body():
        for _ in range(300):  # 30 s at 10 chunks a second
            yield b"x" * 65536
            time.sleep(0.1)

    def upload():
        try:
            outcome.append(
                requests.put(
                    f"{stack.url}/v2/images/{image['id']}/file",
                    data=slow_body(),
                    headers={"Content-Type": "application/octet-stream"},
                    timeout=30,
                ).status_code
            )
        except requests.RequestException as exc:
            outcome.append(exc)

    uploader = threading.Thread(target=upload)
    uploader.start()
    time.sleep(1.5)
    elapsed = _stop_timed(stack, children)
    uploader.join(timeout=30)
    assert elapsed < 5, elapsed
    assert outcome and outcome[0] != 204, outcome


def test_consumer_stop_adapter():
    """Tripwire for services.launch.quicken_consumer_stop: nameko's QueueConsumer still
    consumes through kombu's ConsumerMixin.consume and its ``safety_interval``."""
    from kombu.mixins import ConsumerMixin
    from nameko.messaging import QueueConsumer

    assert issubclass(QueueConsumer, ConsumerMixin)
    assert "consume" not in vars(QueueConsumer)
    assert "safety_interval" in inspect.signature(ConsumerMixin.consume).parameters
    assert "self.consume(" in inspect.getsource(ConsumerMixin.run)
