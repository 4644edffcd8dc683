"""The image cache on two API nodes sharing one registry and store: node A is tessera-run
(its cache in cache-a), node B a second gateway and cache service on the same broker and
database with a cache directory of its own (cache-b) and a small size (pruning)."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import uuid

import pytest
import requests

from tests.conftest import Api, random_image
from tests.integration.test_image_data import MiB, upload, wait_for
from tests.integration.test_notifications import Listener
from tests.stack import ROOT, Stack, free_port

NODE_B_MAX = 10 * MiB
ADMIN = {"X-Roles": "admin", "X-Project-Id": "cache-admin"}


class NodeB:
    """A second API node: gateway + cache service with their own port and cache dir."""

    def __init__(self, stack: Stack):
        self.stack = stack
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cache_dir = stack.workdir / "cache-b"
        text = stack.config.read_text()
        text = re.sub(r"bind_port = \d+", f"bind_port = {self.port}", text)
        text = re.sub(r"image_cache_dir = .*", f"image_cache_dir = {self.cache_dir}", text)
        text = re.sub(r"image_cache_max_size = .*", f"image_cache_max_size = {NODE_B_MAX}", text)
        self.config = stack.workdir / "node-b.conf"
        self.config.write_text(text)
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, *names: str) -> None:
        commands = {
            "api": [sys.executable, "-m", "services.api.server"],
            "cache": [sys.executable, "-m", "services.launch", "cache"],
        }
        for name in names or ("api", "cache"):
            with open(self.stack.workdir / f"node-b-{name}.log", "ab") as log:
                self.procs[name] = subprocess.Popen(
                    [*commands[name], "--config-file", str(self.config)],
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        if "api" in (names or ("api",)):
            wait_for(self._serving, timeout=60, what="node B's gateway")

    def _serving(self) -> bool:
        try:
            return requests.get(f"{self.url}/versions", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def stop(self, *names: str) -> None:
        for name in names or tuple(self.procs):
            proc = self.procs.pop(name, None)
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("cache")
    stack = Stack(
        workdir,
        sections={
            "DEFAULT": {"image_cache_dir": workdir / "cache-a", "image_cache_max_size": 64 * MiB},
            "oslo_messaging_notifications": {"driver": "messagingv2"},
        },
    ).start()
    node_b = NodeB(stack)
    try:
        node_b.start()
        wait_for(
            lambda: cache_consumers(stack) >= 2, timeout=60, what="both cache services consuming"
        )
        yield stack, node_b
    finally:
        node_b.stop()
        stack.cleanup()


def cache_consumers(stack) -> int:
    return sum(
        count
        for queue, count in stack.queue_consumers().items()
        if queue.startswith("evt-registry-image.deleted--cache.")
    )


@pytest.fixture
def api_a(nodes):
    return Api(nodes[0].url, project=f"cache-{uuid.uuid4().hex[:8]}", roles="admin")


@pytest.fixture
def api_b(nodes, api_a):
    return Api(nodes[1].url, project=api_a.project, roles="admin")


def new_image(api, size: int) -> tuple[str, bytes]:
    data = random_image(size)
    image = api.create(name="cached", disk_format="raw", container_format="bare")
    assert upload(api, image["id"], data).status_code == 204
    return image["id"], data


def cached_ids(api) -> set[str]:
    resp = api.get("/v2/cache")
    assert resp.status_code == 200, resp.text
    return {entry["image_id"] for entry in resp.json()["cached_images"]}


def download(api, image_id: str, **headers) -> requests.Response:
    return api.get(f"/v2/images/{image_id}/file", headers=headers)


def fill(api, image_id: str, data: bytes) -> None:
    got = download(api, image_id)
    assert got.status_code == 200 and got.content == data
    wait_for(lambda: image_id in cached_ids(api), what="the cache fill")


def fills(stack, image_id: str) -> int:
    return stack.logs().count(f"image {image_id}: cached")


def test_versions_list_the_cache_api(nodes):
    versions = requests.get(f"{nodes[0].url}/versions", timeout=10).json()["versions"]
    assert versions[0] == {
        "id": "v2.18",
        "status": "CURRENT",
        "links": [{"rel": "self", "href": f"{nodes[0].url}/v2/"}],
    }
    assert {f"v2.{n}" for n in range(14, 19)} <= {v["id"] for v in versions}


def test_each_node_has_durable_event_queues_of_its_own(nodes):
    stack, node_b = nodes
    out = subprocess.run(
        [
            "rabbitmqctl",
            "-q",
            "list_queues",
            "-p",
            stack.vhost.name,
            "name",
            "durable",
            "arguments",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    queues = [line.split("\t") for line in out.splitlines() if line.startswith("evt-registry-")]
    for node_dir in (stack.workdir / "cache-a", node_b.cache_dir):
        node = (node_dir / "node-id").read_text().strip()
        mine = {name: rest for name, *rest in queues if name.endswith(f"-{node}")}
        assert {name.split("--")[0] for name in mine} == {
            "evt-registry-image.deleted",
            "evt-registry-image.deactivated",
            "evt-registry-location.removed",
        }
        assert all(durable == "true" and "x-expires" in args for durable, args in mine.values())


def test_second_download_and_range_from_cache_with_the_store_stopped(nodes, api_a):
    stack, _ = nodes
    image_id, data = new_image(api_a, 3 * MiB + 5)
    fill(api_a, image_id, data)
    stores = stack.processes("store")
    for proc in stores:
        proc.suspend()
    try:
        got = download(api_a, image_id)
        assert got.status_code == 200 and got.content == data
        assert got.headers["Content-MD5"] == hashlib.md5(data).hexdigest()
        part = download(api_a, image_id, Range="bytes=1000-2999")
        assert part.status_code == 206 and part.content == data[1000:3000]
        assert part.headers["Content-Range"] == f"bytes 1000-2999/{len(data)}"
        tail = download(api_a, image_id, Range="bytes=-10")
        assert tail.status_code == 206 and tail.content == data[-10:]
    finally:
        for proc in stores:
            proc.resume()
    hits = {e["image_id"]: e["hits"] for e in api_a.get("/v2/cache").json()["cached_images"]}
    assert hits[image_id] == 3
    assert api_a.request("HEAD", f"/v2/images/{image_id}/file").status_code == 200
    cache_file = str(stack.workdir / "cache-a" / image_id)
    wait_for(
        lambda: (
            not any(
                f.path == cache_file for p in stack.processes("gateway") for f in p.open_files()
            )
        ),
        what="every response to close its cache file",
    )


def test_a_cache_hit_sends_image_send(nodes, api_a):
    stack, _ = nodes
    listener = Listener(stack.vhost.transport_url)
    try:
        image_id, data = new_image(api_a, MiB)
        fill(api_a, image_id, data)
        listener.heard.wait_for(image_id, "image.send")  # the store's, for the fill
        assert download(api_a, image_id).content == data  # a hit
        events = listener.heard.wait_for(image_id, "image.send", "image.send")
    finally:
        listener.stop()
    hit = [e for e in events if e["event_type"] == "image.send"][-1]
    assert hit["priority"] == "INFO"
    assert hit["payload"] == {
        "bytes_sent": MiB,
        "image_id": image_id,
        "owner_id": api_a.project,
        "receiver_tenant_id": api_a.project,
        "receiver_user_id": "test-user",
    }


@pytest.mark.parametrize("damage", ["truncate", "overwrite"])
def test_damaged_cache_file_is_not_served(nodes, api_a, damage):
    stack, _ = nodes
    image_id, data = new_image(api_a, MiB + 7)
    fill(api_a, image_id, data)
    path = stack.workdir / "cache-a" / image_id
    with open(path, "r+b") as handle:
        if damage == "truncate":
            handle.truncate(MiB)
        else:
            handle.seek(4096)
            handle.write(b"\xff" * 16)
    got = download(api_a, image_id)
    assert got.status_code == 200 and got.content == data  # from the store
    assert (stack.workdir / "cache-a" / "invalid" / image_id).exists()
    wait_for(lambda: image_id in cached_ids(api_a), what="the refill")
    assert path.read_bytes() == data


def test_parallel_first_downloads_fill_once(nodes, api_a):
    stack, _ = nodes
    image_id, data = new_image(api_a, 8 * MiB)
    results = []

    def get():
        resp = download(api_a, image_id)
        results.append((resp.status_code, hashlib.sha256(resp.content).digest()))

    threads = [threading.Thread(target=get) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [(200, hashlib.sha256(data).digest())] * 8
    wait_for(lambda: image_id in cached_ids(api_a), what="the cache fill")
    assert fills(stack, image_id) == 1


def test_fill_killed_half_way_leaves_nothing_servable(nodes, api_a):
    stack, _ = nodes
    image_id, data = new_image(api_a, 24 * MiB)
    host, port = stack.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
    sock.sendall(
        f"GET /v2/images/{image_id}/file HTTP/1.1\r\nHost: x\r\nX-Roles: admin\r\n"
        f"X-Project-Id: {api_a.project}\r\n\r\n".encode()
    )
    sock.recv(256 << 10)  # the client reads a little, then stalls
    partial = stack.workdir / "cache-a" / "incomplete" / image_id
    wait_for(lambda: partial.exists() and partial.stat().st_size > 0, what="the partial fill")
    filler = next(
        p for p in stack.processes("gateway") if any(f.path == str(partial) for f in p.open_files())
    )
    filler.send_signal(signal.SIGKILL)
    sock.close()
    assert partial.exists() and partial.stat().st_size < len(data)  # half-written
    wait_for(
        lambda: len(stack.processes("gateway")) == 2,  # the master and a new worker
        what="gunicorn to replace the worker",
    )
    api = Api(stack.url, project=api_a.project, roles="admin")  # no connection to the dead
    assert image_id not in cached_ids(api)
    # the next download serves the right bytes and takes the abandoned fill over
    got = download(api, image_id)
    assert got.status_code == 200 and got.content == data
    wait_for(lambda: image_id in cached_ids(api), what="the fill taken over")
    assert (stack.workdir / "cache-a" / image_id).read_bytes() == data


def test_deactivate_and_delete_evict_on_both_nodes(nodes, api_a, api_b):
    image_id, data = new_image(api_a, MiB)
    fill(api_a, image_id, data)
    fill(api_b, image_id, data)
    assert api_a.post(f"/v2/images/{image_id}/actions/deactivate").status_code == 204
    for api in (api_a, api_b):
        wait_for(lambda api=api: image_id not in cached_ids(api), what="eviction on deactivate")
    assert api_a.post(f"/v2/images/{image_id}/actions/reactivate").status_code == 204
    fill(api_a, image_id, data)
    fill(api_b, image_id, data)
    assert api_a.delete(f"/v2/images/{image_id}").status_code == 204
    for api in (api_a, api_b):
        wait_for(lambda api=api: image_id not in cached_ids(api), what="eviction on delete")


def test_node_down_during_a_delete_never_serves_it(nodes, api_a, api_b):
    _, node_b = nodes
    image_id, data = new_image(api_a, MiB)
    fill(api_b, image_id, data)
    node_b.stop("cache")
    try:
        assert api_a.delete(f"/v2/images/{image_id}").status_code == 204
        assert (node_b.cache_dir / image_id).exists()  # nobody told node B yet
        assert download(api_b, image_id).status_code == 404
    finally:
        node_b.start("cache")
    # its queue kept the event for it
    wait_for(lambda: not (node_b.cache_dir / image_id).exists(), timeout=30, what="eviction")
    assert image_id not in cached_ids(api_b)


def test_pruner_keeps_the_cache_under_its_size_lru_first(nodes, api_b):
    assert api_b.delete("/v2/cache").status_code == 204
    images = [new_image(api_b, 4 * MiB) for _ in range(3)]
    (first, first_data), (second, second_data), (third, third_data) = images
    fill(api_b, first, first_data)
    fill(api_b, second, second_data)
    assert download(api_b, first).content == first_data  # a hit: second is now the LRU
    fill(api_b, third, third_data)  # 12 MiB > 10 MiB: the fill prunes, after its commit
    wait_for(lambda: cached_ids(api_b) == {first, third}, what="the least recently used out")
    assert sum(e["size"] for e in api_b.get("/v2/cache").json()["cached_images"]) <= NODE_B_MAX


def test_prefetcher_and_the_glance_cli(nodes, api_a):
    stack, _ = nodes
    image_id, data = new_image(api_a, 2 * MiB)

    def glance(*args: str) -> str:
        result = subprocess.run(
            [
                str(ROOT / ".venv" / "bin" / "glance"),
                "--os-image-url",
                stack.url,
                "--os-auth-token",
                "x",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    glance("cache-queue", image_id)
    assert image_id in glance("cache-list")  # queued (the CLI lists queued images too)
    wait_for(lambda: image_id in cached_ids(api_a), what="the prefetcher")
    assert image_id in glance("cache-list")
    assert (stack.workdir / "cache-a" / image_id).read_bytes() == data
    glance("cache-delete", image_id)
    assert image_id not in cached_ids(api_a)
    api_a.put(f"/v2/cache/{image_id}")
    wait_for(lambda: image_id in cached_ids(api_a), what="the prefetcher")
    glance("cache-clear")
    assert api_a.get("/v2/cache").json() == {"cached_images": [], "queued_images": []}


def test_cache_api_answers(nodes, api_a):
    stack, _ = nodes
    member = Api(stack.url, project=api_a.project, roles="member")
    assert member.get("/v2/cache").status_code == 403
    assert api_a.put(f"/v2/cache/{uuid.uuid4()}").status_code == 404
    assert api_a.delete(f"/v2/cache/{uuid.uuid4()}").status_code == 404
    queued = api_a.create(name="not-yet", disk_format="raw", container_format="bare")
    assert api_a.put(f"/v2/cache/{queued['id']}").status_code == 400
    bad = api_a.delete("/v2/cache", headers={"x-image-cache-clear-target": "all"})
    assert bad.status_code == 400
    assert api_a.post("/v2/cache/clean").status_code == 200
    pruned = api_a.post("/v2/cache/prune")
    assert pruned.status_code == 200
    assert set(pruned.json()) == {"total_files_pruned", "total_bytes_pruned"}
    assert api_a.get(f"/v2/cache/nodes/{queued['id']}").status_code == 409


def test_tessera_manage_cache(nodes, api_a):
    stack, _ = nodes
    image_id, data = new_image(api_a, MiB)

    def manage(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "services.registry.manage", "--config-file", str(stack.config)]
            + list(args),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert f"{image_id}: queued" in manage("cache", "queue", image_id)
    wait_for(lambda: image_id in cached_ids(api_a), what="the prefetcher")
    assert image_id in manage("cache", "list")
    assert "pruned" in manage("cache", "prune")
    assert "cleaned" in manage("cache", "clean")
    assert f"{image_id}: deleted" in manage("cache", "delete", image_id)
    assert image_id not in cached_ids(api_a)
    unknown = str(uuid.uuid4())
    manage("cache", "queue", unknown)  # the prefetcher drops what it cannot fetch
    wait_for(
        lambda: unknown not in api_a.get("/v2/cache").json()["queued_images"],
        what="an unknown image dropped from the queue",
    )
    manage("cache", "queue", image_id)
    # (the prefetcher may have taken it already)
    assert re.search(
        r"^[01] queued images deleted$", manage("cache", "clear", "--target", "queue"), re.M
    )
