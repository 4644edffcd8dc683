"""Fault injection: a bounded mixed load on a stack whose broker and database are a
private RabbitMQ and MariaDB this test starts (tests/private_services.py), while it
SIGKILLs a registry, a store replica writing an upload and the gateway, restarts the
broker, restarts the database and freezes it (SIGSTOP / SIGCONT).

Afterwards: every acknowledged image exists with its acknowledged metadata, every active
image downloads with matching MD5 and SHA-512, nothing is left saving or importing, no
file in the store is an orphan, no request was a 500 (or any 5xx but 503) and none hung.
It prints its figures: requests, answers by status, recovery time per fault, peak and
final RSS per process."""

from __future__ import annotations

import hashlib
import os
import random
import re
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import psutil
import pytest
import requests

from tests.conftest import random_image
from tests.private_services import PrivateMariaDB, PrivateRabbit
from tests.stack import Stack

MiB = 1 << 20
PROJECT = "faults"
HEADERS = {"X-Project-Id": PROJECT, "X-User-Id": "faults", "X-Roles": "member,reader"}
RPC_TIMEOUT = 10
#: a request taking longer than this is a hang (uploads and downloads excepted)
HANG = RPC_TIMEOUT + 5


@dataclass
class Ledger:
    """What the load did and what the service acknowledged."""

    statuses: Counter = field(default_factory=Counter)
    #: the messages of the 503s
    unavailable: Counter = field(default_factory=Counter)
    connection_errors: Counter = field(default_factory=Counter)
    hangs: list = field(default_factory=list)
    server_errors: list = field(default_factory=list)
    #: image id -> {"name", "x_step": set of values that may be there, "acked": value}
    images: dict = field(default_factory=dict)
    #: image id -> (md5, sha512) of data whose upload was acknowledged (204)
    uploaded: dict = field(default_factory=dict)
    deleted: set = field(default_factory=set)
    #: deletes not acknowledged (a 503, a broken connection) may have been done
    maybe_deleted: set = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, what: str, response: requests.Response, took: float, bulk=False):
        with self.lock:
            self.statuses[response.status_code] += 1
            if response.status_code >= 500 and response.status_code != 503:
                self.server_errors.append((what, response.status_code, response.text[:300]))
            if response.status_code == 503:
                try:
                    self.unavailable[response.json()["error"]["message"][:60]] += 1
                except (ValueError, KeyError, TypeError):
                    self.server_errors.append((what, 503, "not in the JSON error shape"))
            if took > HANG and not bulk:
                self.hangs.append((what, round(took, 1)))

    @property
    def requests(self) -> int:
        return sum(self.statuses.values()) + sum(self.connection_errors.values())


class Client:
    def __init__(self, url: str, ledger: Ledger):
        self.url = url
        self.ledger = ledger
        self.http = requests.Session()
        self.http.headers.update(HEADERS)

    def call(self, method: str, path: str, what: str, bulk=False, **kw):
        """One request; None when the connection failed (the gateway was killed)."""
        kw.setdefault("timeout", 120 if bulk else HANG + 10)
        started = time.monotonic()
        try:
            response = self.http.request(method, self.url + path, **kw)
        except requests.Timeout:
            with self.ledger.lock:
                self.ledger.hangs.append((what, "timeout"))
            return None
        except requests.RequestException as exc:  # the gateway killed mid-request
            with self.ledger.lock:
                self.ledger.connection_errors[what] += 1
            self.http = requests.Session()
            self.http.headers.update(HEADERS)
            return exc
        self.ledger.record(what, response, time.monotonic() - started, bulk)
        return response


def ok(response) -> bool:
    return isinstance(response, requests.Response) and response.status_code < 300


class Load:
    """Threads doing creates, updates, lists, a few uploads and downloads until stopped."""

    def __init__(self, url: str, ledger: Ledger, threads: int = 3):
        self.url = url
        self.ledger = ledger
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(n,)) for n in range(threads)]

    def start(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=180)

    def _run(self, n: int) -> None:
        client = Client(self.url, self.ledger)
        rng = random.Random(n)
        step = 0
        while not self.stopping.is_set():
            step += 1
            self._create_and_update(client, rng, n, step)
            client.call("GET", "/v2/images?limit=20", "list")
            if step % 6 == n % 6:
                self._upload(client, rng)
            if step % 4 == 0:
                self._download(client, rng)
            if step % 9 == 0:
                self._delete(client, rng)
            time.sleep(0.05)

    def _create_and_update(self, client, rng, n, step) -> None:
        name = f"load-{n}-{step}"
        response = client.call(
            "POST",
            "/v2/images",
            "create",
            json={"name": name, "disk_format": "raw", "container_format": "bare"},
        )
        if not ok(response):
            return
        image_id = response.json()["id"]
        with self.ledger.lock:
            self.ledger.images[image_id] = {"name": name, "x_step": {None}, "acked": None}
        value = str(step)
        with self.ledger.lock:
            self.ledger.images[image_id]["x_step"].add(value)  # may land unacknowledged
        response = client.call(
            "PATCH",
            f"/v2/images/{image_id}",
            "update",
            data=f'[{{"op": "add", "path": "/x_step", "value": "{value}"}}]',
            headers={"Content-Type": "application/openstack-images-v2.1-json-patch"},
        )
        if ok(response):
            with self.ledger.lock:
                self.ledger.images[image_id]["acked"] = value

    def _upload(self, client, rng) -> None:
        with self.ledger.lock:
            queued = [i for i in self.ledger.images if i not in self.ledger.uploaded]
        if not queued:
            return
        image_id = rng.choice(queued[-5:])
        data = random_image(rng.choice((8, 8, 16)) * MiB)
        response = client.call(
            "PUT",
            f"/v2/images/{image_id}/file",
            "upload",
            bulk=True,
            data=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        if ok(response):
            with self.ledger.lock:
                self.ledger.uploaded[image_id] = (
                    hashlib.md5(data).hexdigest(),
                    hashlib.sha512(data).hexdigest(),
                )

    def _download(self, client, rng) -> None:
        with self.ledger.lock:
            active = [i for i in self.ledger.uploaded if i not in self.ledger.maybe_deleted]
        if active:
            client.call("GET", f"/v2/images/{rng.choice(active)}/file", "download", bulk=True)

    def _delete(self, client, rng) -> None:
        with self.ledger.lock:
            candidates = [i for i in self.ledger.images if i not in self.ledger.maybe_deleted]
        if not candidates:
            return
        image_id = rng.choice(candidates)
        with self.ledger.lock:
            self.ledger.maybe_deleted.add(image_id)
        if ok(client.call("DELETE", f"/v2/images/{image_id}", "delete")):
            with self.ledger.lock:
                self.ledger.deleted.add(image_id)


class RssSampler(threading.Thread):
    """Peak and last RSS of every process of the stack, by role and pid."""

    def __init__(self, stack: Stack):
        super().__init__(daemon=True)
        self.stack = stack
        self.peak: dict[tuple[str, int], int] = {}
        self.last: dict[tuple[str, int], int] = {}
        self.stopping = threading.Event()

    def processes(self) -> list[tuple[str, psutil.Process]]:
        roots = [psutil.Process(self.stack.process.pid)]
        roots += [psutil.Process(p.pid) for p in self.stack.extra if p.poll() is None]
        found = []
        for proc in [p for r in roots for p in r.children(recursive=True)] + roots[1:]:
            try:
                role = role_of(proc)
            except psutil.Error:
                continue
            if role != "?":  # a zombie
                found.append((role, proc))
        return found

    def run(self) -> None:
        while not self.stopping.is_set():
            self.last = {}
            for role, proc in self.processes():
                try:
                    rss = proc.memory_info().rss
                except psutil.Error:
                    continue
                key = (role, proc.pid)
                self.last[key] = rss
                self.peak[key] = max(self.peak.get(key, 0), rss)
            time.sleep(0.5)


def role_of(proc: psutil.Process) -> str:
    cmdline = proc.cmdline()
    if "services.launch" in cmdline:
        return cmdline[cmdline.index("services.launch") + 1]
    if "services.api.server" in cmdline:
        parent = proc.parent()
        return (
            "gateway worker" if parent and "services.api.server" in parent.cmdline() else "gateway"
        )
    return os.path.basename(cmdline[0]) if cmdline else "?"


def children(stack: Stack, role: str) -> list[psutil.Process]:
    """tessera-run's own children of that role (the ones it restarts)."""
    return [
        p
        for p in psutil.Process(stack.process.pid).children()
        if role_of(p) == role and p.status() != psutil.STATUS_ZOMBIE
    ]


def probe(url: str) -> bool:
    """Whether the API serves a create and a show right now."""
    http = requests.Session()
    http.headers.update(HEADERS)
    try:
        created = http.post(
            f"{url}/v2/images",
            json={"name": "probe", "disk_format": "raw", "container_format": "bare"},
            timeout=HANG,
        )
        if created.status_code != 201:
            return False
        image_id = created.json()["id"]
        shown = http.get(f"{url}/v2/images/{image_id}", timeout=HANG).status_code == 200
        http.delete(f"{url}/v2/images/{image_id}", timeout=HANG)
        return shown
    except requests.RequestException:
        return False


def recovery(url: str, since: float, limit: float = 60) -> float:
    """Seconds from ``since`` until the API serves again."""
    while not probe(url):
        assert time.monotonic() - since < limit, "the stack did not recover"
        time.sleep(0.2)
    return round(time.monotonic() - since, 1)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = PrivateRabbit.available() or PrivateMariaDB.available()
    if reason:
        pytest.skip(f"a private RabbitMQ and MariaDB cannot run here: {reason}")
    workdir = tmp_path_factory.mktemp("faults")
    rabbit = PrivateRabbit(workdir)
    mariadb = PrivateMariaDB(workdir)
    stack = None
    try:
        mariadb.install().start()
        mariadb.create_database()
        rabbit.start()
        stack = Stack(
            workdir,
            transport_url=rabbit.url,
            database_url=mariadb.url,
            sections={
                "DEFAULT": {"rpc_timeout": RPC_TIMEOUT},
                # a sweep claim stranded by a fault (its replica killed, or its end
                # refused while the broker was down) lapses after its lease: 60 s by
                # default, longer than this test waits for the sweep after the faults
                "store": {"sweep_interval": 2, "sweep_grace_seconds": 3, "sweep_lease_seconds": 5},
            },
        ).start(timeout=90)
        stack.start_service("registry")
        stack.start_service("store")
        time.sleep(5)  # both consuming
        yield stack, rabbit, mariadb
    finally:
        if stack is not None:
            stack.stop()
        rabbit.cleanup()
        mariadb.cleanup()


def kill_store_mid_upload(stack: Stack, ledger: Ledger) -> float:
    """Start a slow 64 MiB upload, SIGKILL the replica writing it; seconds until the
    image has left saving."""
    client = Client(stack.url, ledger)
    created = client.call(
        "POST", "/v2/images", "create", json={"disk_format": "raw", "container_format": "bare"}
    )
    image_id = created.json()["id"]

    def slow_body():
        block = random_image(MiB)
        for _ in range(64):
            yield block
            time.sleep(0.1)

    upload = threading.Thread(
        target=client.call,
        args=("PUT", f"/v2/images/{image_id}/file", "upload"),
        kwargs={
            "bulk": True,
            "data": slow_body(),
            "headers": {"Content-Type": "application/octet-stream"},
        },
    )
    upload.start()
    deadline = time.monotonic() + 30
    writer = None
    while writer is None:
        assert time.monotonic() < deadline, "the upload never reached a store"
        time.sleep(0.1)
        for proc in psutil.Process(stack.process.pid).children(recursive=True) + [
            psutil.Process(p.pid) for p in stack.extra if p.poll() is None
        ]:
            try:
                if role_of(proc) == "store" and any(image_id in f.path for f in proc.open_files()):
                    writer = proc
            except psutil.Error:
                continue
    killed = time.monotonic()
    writer.send_signal(signal.SIGKILL)
    http = requests.Session()
    http.headers.update(HEADERS)
    while http.get(f"{stack.url}/v2/images/{image_id}", timeout=HANG).json()["status"] == "saving":
        assert time.monotonic() - killed < 30, "the image stayed saving"
        time.sleep(0.1)
    released = round(time.monotonic() - killed, 1)
    upload.join(timeout=60)
    if any(p.pid == writer.pid for p in stack.extra):
        stack.extra = [p for p in stack.extra if p.pid != writer.pid]
        stack.start_service("store")
    return released


@pytest.mark.timeout(400)
def test_faults(cluster):
    stack, rabbit, mariadb = cluster
    ledger = Ledger()
    sampler = RssSampler(stack)
    sampler.start()
    load = Load(stack.url, ledger).start()
    recovered: dict[str, float] = {}
    try:
        time.sleep(3)

        registry = children(stack, "registry")[0]
        started = time.monotonic()
        registry.send_signal(signal.SIGKILL)  # tessera-run starts it again
        recovered["registry SIGKILL"] = recovery(stack.url, started)
        time.sleep(1)

        recovered["store SIGKILL mid-upload (image left saving)"] = kill_store_mid_upload(
            stack, ledger
        )
        time.sleep(1)

        gateway = children(stack, "gateway")[0]
        workers = gateway.children()
        started = time.monotonic()
        for proc in (gateway, *workers):  # master and workers at once, as a host crash
            proc.send_signal(signal.SIGKILL)
        recovered["gateway SIGKILL"] = recovery(stack.url, started)
        time.sleep(1)

        for name, server in (("RabbitMQ", rabbit), ("MariaDB", mariadb)):
            started = time.monotonic()
            server.stop()
            time.sleep(1)
            server.start()
            recovered[f"{name} restart"] = recovery(stack.url, started)
            time.sleep(1)

        started = time.monotonic()
        mariadb.freeze()
        frozen = Client(stack.url, ledger)
        during = frozen.call("GET", "/v2/images?limit=1", "list while frozen")
        took = time.monotonic() - started
        time.sleep(max(0.0, 6 - took))
        mariadb.thaw()
        recovered["MariaDB frozen 6 s"] = recovery(stack.url, started)
        freeze_answer = (getattr(during, "status_code", during), round(took, 1))
        time.sleep(2)
    finally:
        load.stop()

    # --- after the faults: the lease and a sweep have passed
    time.sleep(8)
    http = requests.Session()
    http.headers.update(HEADERS)
    images = {}
    url = f"{stack.url}/v2/images?limit=100"
    while url:
        page = http.get(url, timeout=HANG).json()
        images.update({i["id"]: i for i in page["images"]})
        url = f"{stack.url}{page['next']}" if "next" in page else None

    sampler.stopping.set()
    sampler.join()
    report(ledger, recovered, freeze_answer, sampler, len(images))

    # every process lived through the broker and database faults by itself: tessera-run
    # restarted only the ones killed, and the replicas it does not watch still run
    restarts = re.findall(r"tessera: (\w+) exited with (-?\d+)", stack.log.read_text())
    assert {code for _, code in restarts} <= {"-9"}, restarts
    assert len(restarts) <= 3, restarts
    assert all(proc.poll() is None for proc in stack.extra), "a replica died"
    assert not ledger.server_errors, ledger.server_errors
    assert ledger.unavailable["The database is unavailable, retry"], ledger.unavailable
    assert not ledger.hangs, ledger.hangs
    assert freeze_answer[0] in (200, 503), freeze_answer
    stuck = {i: v["status"] for i, v in images.items() if v["status"] in ("saving", "importing")}
    assert not stuck, stuck
    for image_id, expected in ledger.images.items():
        if image_id in ledger.deleted:
            assert http.get(f"{stack.url}/v2/images/{image_id}", timeout=HANG).status_code == 404
            continue
        if image_id not in images and image_id in ledger.maybe_deleted:
            continue
        assert image_id in images, f"acknowledged image {image_id} is lost"
        shown = images[image_id]
        assert shown["name"] == expected["name"]
        assert shown.get("x_step") in expected["x_step"], (shown.get("x_step"), expected)
        if expected["acked"] is not None:
            assert shown.get("x_step") is not None
    active = {i for i, v in images.items() if v["status"] == "active"}
    assert set(ledger.uploaded) - ledger.maybe_deleted <= active
    for image_id in active:
        body = http.get(f"{stack.url}/v2/images/{image_id}/file", timeout=120).content
        md5, sha512 = hashlib.md5(body).hexdigest(), hashlib.sha512(body).hexdigest()
        assert (md5, sha512) == (images[image_id]["checksum"], images[image_id]["os_hash_value"])
        if image_id in ledger.uploaded:
            assert (md5, sha512) == ledger.uploaded[image_id]
    deadline = time.monotonic() + 20
    while (files := sorted(p.name for p in stack.datadir.iterdir())) != sorted(active):
        assert time.monotonic() < deadline, (
            f"orphans: {set(files) - active}, missing: {active - set(files)}"
        )
        time.sleep(0.5)


def report(ledger: Ledger, recovered: dict, freeze_answer, sampler: RssSampler, images: int):
    lines = [
        "",
        f"fault injection: {ledger.requests} requests, {images} images at the end",
        "answers by status: "
        + ", ".join(f"{code}: {n}" for code, n in sorted(ledger.statuses.items())),
        "connection errors (gateway killed): "
        + (", ".join(f"{w}: {n}" for w, n in ledger.connection_errors.items()) or "none"),
        f"a list while MariaDB was frozen: {freeze_answer[0]} after {freeze_answer[1]} s",
        "503 messages: " + "; ".join(f"{m!r}: {n}" for m, n in ledger.unavailable.most_common(5)),
        "recovery per fault:",
        *(f"  {fault}: {seconds} s" for fault, seconds in recovered.items()),
        "RSS per process (MB, peak / final; pid of each run):",
    ]
    for (role, pid), peak in sorted(sampler.peak.items()):
        final = sampler.last.get((role, pid))
        shown = f"{final / 1e6:.0f}" if final else "gone"
        lines.append(f"  {role} {pid}: {peak / 1e6:.0f} / {shown}")
    print("\n".join(lines))
