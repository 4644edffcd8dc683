"""Every broker host of transport_url is used: with the first host a dead port, the
gateway's client and the nameko services fail over to the second (the real broker); and
pooled connections live through idle periods longer than the heartbeat timeout."""

from __future__ import annotations

import subprocess
import time

import pytest

from services.api.rpc_client import RpcClient
from services.common.config import load_config
from services.common.context import RequestContext
from services.common.errors import ServiceUnavailable
from tests.conftest import Api
from tests.integration.test_image_data import active_image
from tests.stack import Stack, Vhost, free_port


@pytest.fixture(scope="module")
def failover_stack(tmp_path_factory):
    vhost = Vhost()
    dead = free_port()  # nothing listens here
    transport_url = f"rabbit://guest:guest@127.0.0.1:{dead},guest:guest@127.0.0.1:5672/{vhost.name}"
    stack = Stack(
        tmp_path_factory.mktemp("rpc-failover"),
        transport_url=transport_url,
        sections={"oslo_messaging_rabbit": {"heartbeat_timeout_threshold": 2}},
    )
    stack.vhost_name = vhost.name
    try:
        yield stack.start()
    finally:
        stack.cleanup()
        vhost.delete()


def test_gateway_and_services_use_the_second_host(failover_stack):
    api = Api(failover_stack.url)
    # the store replica (nameko, kombu's failover list) reaches the registry too
    image = active_image(api, "over-the-second-host", b"x" * 4096)
    assert api.get(f"/v2/images/{image['id']}/file").content == b"x" * 4096
    assert "over-the-second-host" in {i["name"] for i in api.get("/v2/images").json()["images"]}


def test_client_connects_past_a_dead_first_host(failover_stack):
    conf = load_config(["--config-file", str(failover_stack.config)])
    client = RpcClient.from_config(conf)
    try:
        assert [h.host.split(":")[1] for h in client.hosts][1] == "5672"
        for _ in range(3):
            assert client.call("registry", "health", RequestContext())["status"] == "ok"
        assert client._next_host == 1  # it remembers the host that works
    finally:
        client.close()


def test_only_dead_hosts_is_a_503():
    client = RpcClient(
        f"amqp://guest:guest@127.0.0.1:{free_port()}/;amqp://guest:guest@127.0.0.1:{free_port()}/",
        timeout=2,
    )
    with pytest.raises(ServiceUnavailable, match="cannot reach its message broker"):
        client.call("registry", "health", RequestContext())


def test_idle_pooled_connections_outlive_the_heartbeat_timeout(failover_stack):
    """heartbeat_timeout_threshold = 2: the broker closes a connection that sends nothing
    for that long, unless the client's keeper thread sends heartbeats for idle ones."""
    conf = load_config(["--config-file", str(failover_stack.config)])
    client = RpcClient.from_config(conf)
    try:
        assert client.heartbeat == 2
        client.call("registry", "health", RequestContext())
        (pooled,) = list(client._idle.queue)
        assert pooled.heartbeat == 2  # as negotiated with the broker
        time.sleep(7)
        assert pooled.is_usable()
        client.call("registry", "health", RequestContext())
        assert list(client._idle.queue) == [pooled]  # the same connection served again
    finally:
        client.close()


def test_a_pooled_connection_the_broker_closed_is_replaced_at_once(failover_stack):
    """The broker closes the gateway's idle connection (a restart, an operator's
    close_connection): the next call notices when it takes the connection from the pool
    and opens another, instead of sending into a dead socket and waiting for the timeout."""
    conf = load_config(["--config-file", str(failover_stack.config)])
    client = RpcClient.from_config(conf)
    try:
        client.call("registry", "health", RequestContext())
        (pooled,) = list(client._idle.queue)
        port = pooled.connection.sock.getsockname()[1]
        listing = subprocess.run(
            ["rabbitmqctl", "-q", "list_connections", "-p", failover_stack.vhost_name]
            + ["pid", "peer_port"],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        (pid,) = [line.split()[0] for line in listing.splitlines() if line.endswith(f"\t{port}")]
        subprocess.run(
            ["rabbitmqctl", "-q", "close_connection", pid, "test"], check=True, timeout=60
        )
        time.sleep(0.5)
        started = time.monotonic()
        assert client.call("registry", "health", RequestContext())["status"] == "ok"
        assert time.monotonic() - started < client.timeout / 2
        assert list(client._idle.queue) != [pooled]
    finally:
        client.close()
