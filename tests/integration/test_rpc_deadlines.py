"""No RPC runs after its caller gave up (services/api/rpc_client.py, services/common/rpc.py),
on the real broker with real service processes:

- a paused registry (SIGSTOP) that resumes after the gateway answered 503 drops the
  request: the image is never created;
- a request queued while the registry is down expires in RabbitMQ (classic and quorum
  queues) and never runs when the registry comes back;
- a request that waited in nameko's worker pool past its deadline is dropped when its
  worker would start;
- a service whose queue exists but has no consumer is a fast 503.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid

import psutil
import pytest

from services.api.rpc_client import RpcClient
from services.common.config import amqp_uri, load_config
from services.common.context import RequestContext
from services.common.errors import ServiceUnavailable
from tests.conftest import Api
from tests.stack import ROOT, Stack, Vhost, write_config

RPC_TIMEOUT = 2.0
ADMIN = RequestContext(project_id="admin-project", roles=("admin", "member", "reader"))


def registries(stack: Stack) -> list[psutil.Process]:
    found = stack.processes("registry")
    assert found
    return found


def kill_registries(stack: Stack) -> None:
    """SIGKILL the registry (its parent, tessera-run, is paused: it stays a zombie)."""
    procs = registries(stack)
    for p in procs:
        p.kill()

    def dead(p: psutil.Process) -> bool:
        try:
            return p.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_until(lambda: all(dead(p) for p in procs), timeout=10, what="the registry to die")


def queue_depth(vhost: str, queue: str) -> int:
    out = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name", "messages", "type"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    for line in out.splitlines():
        fields = line.split()
        if fields and fields[0] == queue:
            return int(fields[1])
    raise AssertionError(f"no queue {queue} in {out}")


def queue_type(vhost: str, queue: str) -> str:
    out = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name", "type"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return dict(line.split()[:2] for line in out.splitlines() if len(line.split()) >= 2)[queue]


def wait_until(predicate, timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def names(admin: Api) -> set[str]:
    resp = admin.get("/v2/images?limit=1000")
    assert resp.status_code == 200, resp.text
    return {image["name"] for image in resp.json()["images"]}


@pytest.fixture(scope="module", params=["classic", "quorum"])
def short_stack(request, tmp_path_factory):
    """A stack whose gateway gives up after RPC_TIMEOUT seconds; its registry's RPC queue
    is a classic or a quorum queue."""
    sections = {}
    if request.param == "quorum":
        sections["oslo_messaging_rabbit"] = {"rabbit_quorum_queue": "true"}
    stack = Stack(
        tmp_path_factory.mktemp(f"rpc-deadline-{request.param}"),
        sections=sections,
        rpc_timeout=RPC_TIMEOUT,
    ).start()
    stack.queue_kind = request.param
    yield stack
    stack.cleanup()


def test_rpc_queues_have_the_configured_type(short_stack):
    assert queue_type(short_stack.vhost.name, "rpc-registry") == short_stack.queue_kind
    assert queue_type(short_stack.vhost.name, "rpc-store") == short_stack.queue_kind


def test_a_create_sent_to_a_paused_registry_never_runs(short_stack):
    admin = Api(short_stack.url, project="admin-project", roles="admin,member,reader")
    name = f"paused-{uuid.uuid4().hex[:8]}"
    paused = registries(short_stack)
    for p in paused:
        p.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        resp = admin.post(
            "/v2/images", json={"name": name, "disk_format": "raw", "container_format": "bare"}
        )
        elapsed = time.monotonic() - started
        assert resp.status_code == 503, resp.text
        assert elapsed >= RPC_TIMEOUT * 0.9  # it waited for the paused registry
    finally:
        for p in paused:
            p.send_signal(signal.SIGCONT)
    # the registry resumes, finds the request past its deadline and drops it
    wait_until(lambda: "dropped registry.create_image" in short_stack.logs(), what="the drop")
    time.sleep(1)
    assert name not in names(admin)
    # and it still serves
    assert admin.create(name=name + "-after", disk_format="raw", container_format="bare")
    assert name + "-after" in names(admin)


def test_a_request_queued_while_the_registry_is_down_expires_unseen(short_stack):
    """The registry is killed (tessera-run, paused, cannot restart it); a tag sent now
    waits in the registry's durable queue, the caller gets 503 after its timeout, RabbitMQ
    drops the request, and the registry that comes back never applies it."""
    api = Api(short_stack.url, project=f"p-{uuid.uuid4().hex[:8]}")
    image = api.create(name="tagged-later", disk_format="raw", container_format="bare")
    conf = load_config(["--config-file", str(short_stack.config)])
    # a client that trusts its last look at the queue's consumers: it publishes
    client = RpcClient(amqp_uri(conf), timeout=RPC_TIMEOUT, consumer_check_interval=3600)
    ctx = RequestContext(project_id=api.project, roles=("member", "reader"))
    supervisor = psutil.Process(short_stack.process.pid)
    try:
        client.call("registry", "health", ctx)  # the registry has a consumer
        supervisor.send_signal(signal.SIGSTOP)
        try:
            kill_registries(short_stack)
            started = time.monotonic()
            with pytest.raises(ServiceUnavailable, match="did not answer in time"):
                client.call("registry", "add_tag", ctx, image["id"], "never")
            assert time.monotonic() - started >= RPC_TIMEOUT * 0.9
            # RabbitMQ dropped it: the message's expiration is the caller's timeout
            wait_until(
                lambda: queue_depth(short_stack.vhost.name, "rpc-registry") == 0,
                timeout=10,
                what="the request to expire",
            )
        finally:
            supervisor.send_signal(signal.SIGCONT)
        # tessera-run restarts the registry
        wait_until(lambda: short_stack._services_answer(), what="the registry to come back")
    finally:
        client.close()
    time.sleep(1)
    resp = api.get(f"/v2/images/{image['id']}")
    assert resp.status_code == 200
    assert "never" not in resp.json()["tags"]


def test_a_service_with_no_consumer_is_a_fast_503(short_stack):
    """The registry's queue exists (durable) but nobody consumes it."""
    api = Api(short_stack.url)
    supervisor = psutil.Process(short_stack.process.pid)
    supervisor.send_signal(signal.SIGSTOP)
    try:
        kill_registries(short_stack)
        time.sleep(1.5)  # past the gateway's last look at the queue's consumers
        started = time.monotonic()
        resp = api.get("/v2/images")
        elapsed = time.monotonic() - started
        assert resp.status_code == 503, resp.text
        assert "not running" in resp.json()["error"]["message"]
        assert elapsed < RPC_TIMEOUT / 2, elapsed
        assert queue_depth(short_stack.vhost.name, "rpc-registry") == 0  # nothing was sent
    finally:
        supervisor.send_signal(signal.SIGCONT)
    wait_until(lambda: short_stack._services_answer(), what="the registry to come back")


def test_a_request_that_waited_for_a_worker_past_its_deadline_is_dropped(tmp_path):
    """One worker, kept busy after its reply; the next request is delivered at once but
    waits in nameko's worker pool past its deadline, and is dropped when it would start."""
    vhost = Vhost()
    record = tmp_path / "ran.txt"
    record.write_text("")
    config = write_config(
        tmp_path / "tessera.conf",
        DEFAULT={"transport_url": vhost.transport_url, "data_dir": tmp_path / "data"},
    )
    log = open(tmp_path / "service.log", "wb")
    service = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.integration.rpc_deadline_service",
            "--config-file",
            str(config),
            str(record),
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    client = RpcClient(vhost.transport_url.replace("rabbit://", "amqp://"), timeout=1.0)
    ctx = RequestContext()
    try:

        def answers() -> bool:
            try:
                return client.call("deadline_test", "record", ctx, "ready") == "ready"
            except ServiceUnavailable:
                return False

        wait_until(answers, what="the test service")
        client.timeout = 10
        assert client.call("deadline_test", "hold", ctx, 3.0) == "held"  # worker busy 3 s
        client.timeout = 1.0
        with pytest.raises(ServiceUnavailable, match="did not answer in time"):
            client.call("deadline_test", "record", ctx, "late")
        time.sleep(3)
        client.timeout = 10
        assert client.call("deadline_test", "record", ctx, "on-time") == "on-time"
        assert record.read_text().split() == ["ready", "on-time"]
        assert "dropped deadline_test.record without running it" in (
            (tmp_path / "service.log").read_text()
        )
    finally:
        client.close()
        service.terminate()
        service.wait(15)
        log.close()
        vhost.delete()
