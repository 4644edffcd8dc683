"""The cluster mode (``tessera-run --cluster``, ``make run-cluster``): 2 gateways, 2
registries, 3 store replicas and a cache service beside each gateway, on MariaDB.

A small mixed load (creates, uploads of a few MiB, downloads, lists) runs through both
gateways while one process of each kind is killed with SIGKILL (a gateway with its
workers, a registry, a store replica). Afterwards nothing acknowledged is lost, nothing
is left ``saving``, and every active image downloads intact (MD5 and SHA-512) through
the surviving gateway; tessera-run has restarted each killed process. The timers every
replica runs hand out their work once: each deleted image is scrubbed by one store."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import threading
import time
from collections import Counter

import pytest
import requests

from tests.conftest import Api, random_image
from tests.integration.test_image_data import MiB, upload, wait_for
from tests.stack import Stack

LEASE = 3  # [store] upload_lease_seconds: a killed replica's uploads are released soon
CLIENTS = 4
ROUNDS = 6  # per client: create, upload, download, list
KILL_AFTER = 6  # acknowledged uploads before the kills


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("cluster")
    stack = Stack(
        workdir,
        mysql=True,
        cluster=True,
        image_cache_dir=workdir / "data" / "cache",
        # delayed delete with a scrubber run every second on each store replica
        delayed_delete=True,
        wakeup_time=1,
        sections={"store": {"upload_lease_seconds": LEASE}},
    )
    try:
        stack.start(timeout=100)
        wait_for(
            lambda: queue_consumers(stack) == {"registry": 2, "store": 3, "cache": 2},
            timeout=60,
            what="every replica consuming",
        )
        yield stack
    finally:
        stack.cleanup()


def queue_consumers(stack) -> dict[str, int]:
    """Consumers of each service's RPC queue, as RabbitMQ counts them."""
    counts = stack.queue_consumers().items()
    return {name.removeprefix("rpc-"): n for name, n in counts if name.startswith("rpc-")}


def cluster_pids(stack) -> dict[str, int]:
    """{process name: pid} as tessera-run logs them when it starts the cluster."""
    line = next(
        line for line in stack.log.read_text().splitlines() if line.startswith("tessera: cluster")
    )
    return {name: int(pid) for name, pid in re.findall(r"([a-z]+-\d+) \(pid (\d+)\)", line)}


class Load:
    """Clients that each create an image, upload a few MiB, download it back and list,
    alternating between the gateways; what was acknowledged is kept."""

    def __init__(self, urls: list[str]):
        self.urls = urls
        self.created: dict[str, str] = {}  # image id -> name, answered 201
        self.uploaded: dict[str, tuple[str, str]] = {}  # image id -> (md5, sha512), 204
        self.statuses: Counter = Counter()
        self.corrupt: list[str] = []
        self.lock = threading.Lock()

    def _record(self, resp) -> requests.Response:
        with self.lock:
            self.statuses[resp.status_code] += 1
        return resp

    def _call(self, fn, *args, **kwargs):
        try:
            return self._record(fn(*args, **kwargs))
        except requests.RequestException:  # a gateway killed under the request
            with self.lock:
                self.statuses["connection error"] += 1
            return None

    def client(self, number: int) -> None:
        for round_ in range(ROUNDS):
            api = Api(self.urls[(number + round_) % len(self.urls)], project="cluster")
            name = f"c{number}-{round_}"
            resp = self._call(
                api.post,
                "/v2/images",
                json={"name": name, "disk_format": "raw", "container_format": "bare"},
            )
            if resp is None or resp.status_code != 201:
                continue
            image_id = resp.json()["id"]
            with self.lock:
                self.created[image_id] = name
            data = random_image((1 + (number + round_) % 4) * MiB)
            resp = self._call(upload, api, image_id, data)
            if resp is not None and resp.status_code == 204:
                with self.lock:
                    self.uploaded[image_id] = (
                        hashlib.md5(data).hexdigest(),
                        hashlib.sha512(data).hexdigest(),
                    )
                resp = self._call(api.get, f"/v2/images/{image_id}/file")
                if resp is not None and resp.status_code == 200 and resp.content != data:
                    self.corrupt.append(image_id)
            self._call(api.get, "/v2/images?limit=5")


def kill_one_of_each(stack, pids: dict[str, int]) -> None:
    # the whole gateway (master and workers: its process group), as a host that dies
    os.killpg(pids["api-2"], signal.SIGKILL)
    os.kill(pids["registry-1"], signal.SIGKILL)
    os.kill(pids["store-1"], signal.SIGKILL)


@pytest.mark.timeout(240)  # the cluster's start is most of it
def test_cluster_survives_a_killed_process_of_each_kind(cluster):
    pids = cluster_pids(cluster)
    assert sorted(pids) == sorted(
        [f"registry-{i}" for i in (1, 2)]
        + [f"store-{i}" for i in (1, 2, 3)]
        + [f"{kind}-{i}" for kind in ("api", "cache") for i in (1, 2)]
    )
    # each gateway is a cache node of its own, beside its cache service
    cache = cluster.workdir / "data" / "cache"
    assert sorted(p.name for p in cache.iterdir()) == ["api-1", "api-2"]

    load = Load(cluster.urls)
    clients = [threading.Thread(target=load.client, args=(n,)) for n in range(CLIENTS)]
    for thread in clients:
        thread.start()
    deadline = time.monotonic() + 60
    while len(load.uploaded) < KILL_AFTER:
        assert time.monotonic() < deadline, f"load before the kill: {load.statuses}"
        time.sleep(0.1)
    kill_one_of_each(cluster, pids)
    for thread in clients:
        thread.join(timeout=90)
    assert not any(t.is_alive() for t in clients), "a client hung"
    print(
        f"cluster load: {dict(load.statuses)}; {len(load.created)} created, "
        f"{len(load.uploaded)} uploaded"
    )
    assert not load.corrupt, f"downloads differing from their upload: {load.corrupt}"
    assert len(load.uploaded) > KILL_AFTER, "no upload succeeded after the kills"

    # tessera-run restarted each killed process
    log = cluster.log.read_text()
    for name in ("api-2", "registry-1", "store-1"):
        assert f"tessera: {name} exited" in log, log[-3000:]

    survivor = Api(cluster.urls[0], project="cluster")

    def images() -> list[dict]:
        resp = survivor.get("/v2/images?limit=1000")
        assert resp.status_code == 200, resp.text
        return resp.json()["images"]

    # a killed replica's uploads are released within the lease
    wait_for(
        lambda: not [i for i in images() if i["status"] in ("saving", "importing")],
        timeout=LEASE + 20,
        what="no image left saving",
    )
    # and their partial data removed (by a surviving replica)
    wait_for(
        lambda: not list(cluster.datadir.glob("*.part")),
        timeout=15,
        what="partial uploads removed",
    )
    listed = {image["id"]: image for image in images()}
    for image_id, name in load.created.items():
        assert image_id in listed and listed[image_id]["name"] == name, image_id
    for image_id, (md5, sha512) in load.uploaded.items():
        image = listed[image_id]
        assert image["status"] == "active", image
        assert (image["checksum"], image["os_hash_value"]) == (md5, sha512), image
    for image in listed.values():
        if image["status"] != "active":
            continue
        resp = survivor.get(f"/v2/images/{image['id']}/file")
        assert resp.status_code == 200, resp.text
        assert hashlib.md5(resp.content).hexdigest() == image["checksum"]
        assert hashlib.sha512(resp.content).hexdigest() == image["os_hash_value"]

    # delayed delete: each image is scrubbed once, by one of the three store replicas
    deleted = list(load.uploaded)[:4]
    for image_id in deleted:
        assert survivor.delete(f"/v2/images/{image_id}").status_code == 204

    def scrubbed() -> bool:
        log = cluster.logs()
        return all(f"scrubbed image {image_id}" in log for image_id in deleted)

    wait_for(scrubbed, timeout=30, what="the scrubber")
    log = cluster.logs()
    for image_id in deleted:
        assert log.count(f"scrubbing image {image_id}") == 1, image_id
        assert survivor.get(f"/v2/images/{image_id}").status_code == 404
    stored = {path.name for path in cluster.datadir.iterdir()}
    assert not stored & set(deleted)
