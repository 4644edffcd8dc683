"""Store replicas: two of them share the uploads; one killed mid-upload leaves the image
queued again with no orphan data; one frozen past its lease cannot overwrite the upload
that made the image active meanwhile; caps and quotas stop an upload as the bytes
arrive; the sweep removes data no image owns, and a deleted queued image's leftover
file goes."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import time
import uuid

import psutil
import pytest

from tests.conftest import Api, random_image
from tests.integration.test_image_data import MiB, raw_upload, upload, wait_for
from tests.integration.test_images_api import error_of
from tests.stack import Stack


@pytest.fixture(scope="module")
def replicated(tmp_path_factory):
    """A stack (SQLite) with a second store replica, a short upload lease and small
    limits: image_size_cap 8 MiB, user_storage_quota 12 MiB; a sweep every second of
    files older than 2 s, its claim lapsing 2 s after its replica dies."""
    stack = Stack(
        tmp_path_factory.mktemp("replicas"),
        sections={
            "DEFAULT": {"image_size_cap": 8 * MiB, "user_storage_quota": "12MB"},
            "store": {
                "upload_lease_seconds": 3,
                "sweep_interval": 1,
                "sweep_grace_seconds": 2,
                # a replica killed by an earlier test may hold the sweep's claim
                "sweep_lease_seconds": 2,
            },
        },
    ).start()
    stack.start_service("store")
    wait_for(lambda: store_consumers(stack) == 2, timeout=60, what="both replicas consuming")
    yield stack
    stack.cleanup()


@pytest.fixture
def rapi(replicated):
    return Api(replicated.url, project=f"rp-{os.urandom(4).hex()}")


def store_consumers(stack) -> int:
    """Consumers of the store's RPC queue, as RabbitMQ counts them."""
    return stack.queue_consumers().get("rpc-store", 0)


def store_pids(stack) -> set[int]:
    return {p.pid for p in stack.processes("store")}


def writer_of(stack, path) -> psutil.Process:
    """The store replica holding a file open whose path starts with ``path``."""
    return next(
        p
        for p in stack.processes("store")
        if any(f.path.startswith(str(path)) for f in p.open_files())
    )


def test_both_replicas_take_uploads(replicated, rapi):
    assert len(store_pids(replicated)) == 2
    for _ in range(12):
        image = rapi.create(name="spread", disk_format="raw", container_format="bare")
        assert upload(rapi, image["id"], random_image(1000)).status_code == 204
    received = re.findall(
        r" (\d+) INFO store:\S+ \[[^\]]*req-[^\]]+\] received image", replicated.logs()
    )
    assert len(set(received)) == 2, f"uploads went to {set(received)}"


def test_replica_killed_mid_upload(replicated, rapi):
    image = rapi.create(name="victim", disk_format="raw", container_format="bare")
    sock = raw_upload(replicated.url, rapi, image["id"], 6 * MiB)
    sock.sendall(random_image(2 * MiB))
    wait_for(
        lambda: list(replicated.datadir.glob(f"{image['id']}.*.part")), what="the partial file"
    )
    writer = writer_of(replicated, replicated.datadir / image["id"])
    writer.send_signal(signal.SIGKILL)
    sock.close()
    wait_for(
        lambda: rapi.get(f"/v2/images/{image['id']}").json()["status"] == "queued",
        timeout=20,
        what="the image to be queued again",
    )
    wait_for(
        lambda: not list(replicated.datadir.glob(f"{image['id']}*")),
        timeout=20,
        what="the orphan data to be removed",
    )
    if writer.pid in {p.pid for p in replicated.extra}:
        replicated.extra = [p for p in replicated.extra if p.pid != writer.pid]
    replicated.start_service("store")  # back to two replicas for the other tests


def test_upload_given_up_while_frozen_leaves_the_later_upload(replicated, rapi):
    """A zombie upload: its replica froze (SIGSTOP) past the lease, so the registry gave
    the upload up and another upload made the image active. When the replica wakes and
    the rest of the zombie's data arrives, the zombie is refused (409) and the image
    keeps the data of the upload that made it active."""
    image = rapi.create(name="zombie", disk_format="raw", container_format="bare")
    shown = f"/v2/images/{image['id']}"
    with raw_upload(replicated.url, rapi, image["id"], 4 * MiB) as sock:
        sock.sendall(random_image(2 * MiB))
        wait_for(
            lambda: list(replicated.datadir.glob(f"{image['id']}.*.part")),
            what="the partial file",
        )
        writer = writer_of(replicated, replicated.datadir / image["id"])
        writer.send_signal(signal.SIGSTOP)
        try:
            wait_for(
                lambda: rapi.get(shown).json()["status"] == "queued",
                timeout=20,
                what="the frozen replica's upload to be given up",
            )
        finally:
            writer.send_signal(signal.SIGCONT)
        data = random_image(3 * MiB)
        assert upload(rapi, image["id"], data).status_code == 204
        sock.sendall(random_image(2 * MiB))  # the zombie's data is now complete
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 409"), reply[:300]
    assert rapi.get(shown).json()["checksum"] == hashlib.md5(data).hexdigest()
    assert rapi.get(f"{shown}/file").content == data
    wait_for(
        lambda: [p.name for p in replicated.datadir.glob(f"{image['id']}*")] == [image["id"]],
        what="nothing but the image's file",
    )


def test_size_cap(replicated, rapi):
    image = rapi.create(name="big", disk_format="raw", container_format="bare")
    assert "exceeds" in error_of(upload(rapi, image["id"], random_image(9 * MiB)), 413)

    def chunked():
        for _ in range(9):
            yield random_image(MiB)

    error_of(upload(rapi, image["id"], chunked()), 413)  # no size declared: caught en route
    assert rapi.get(f"/v2/images/{image['id']}").json()["status"] == "queued"
    wait_for(lambda: not list(replicated.datadir.glob(f"{image['id']}*")), what="clean-up")


def test_storage_quota(replicated, rapi):
    first = rapi.create(name="q1", disk_format="raw", container_format="bare")
    assert upload(rapi, first["id"], random_image(7 * MiB)).status_code == 204
    second = rapi.create(name="q2", disk_format="raw", container_format="bare")
    error_of(upload(rapi, second["id"], random_image(7 * MiB)), 413)  # 14 MiB > 12 MB
    assert upload(rapi, second["id"], random_image(4 * MiB)).status_code == 204


def _aged(path, data: bytes = b"orphan"):
    path.write_bytes(data)
    past = time.time() - 60
    os.utime(path, (past, past))
    return path


def test_sweep_removes_orphans_keeps_owned_data(replicated, rapi):
    kept = rapi.create(name="kept", disk_format="raw", container_format="bare")
    assert upload(rapi, kept["id"], random_image(1000)).status_code == 204
    os.utime(replicated.datadir / kept["id"], (time.time() - 60,) * 2)
    queued = rapi.create(name="leftover", disk_format="raw", container_format="bare")
    orphans = [
        _aged(replicated.datadir / str(uuid.uuid4())),  # no such image
        _aged(replicated.datadir / queued["id"]),  # a queued image's complete file
        _aged(replicated.datadir / f"{kept['id']}.{uuid.uuid4()}.part"),  # no such upload
    ]
    foreign = _aged(replicated.datadir / "not-an-image")
    wait_for(lambda: not any(p.exists() for p in orphans), timeout=20, what="the sweep")
    assert (replicated.datadir / kept["id"]).exists() and foreign.exists()
    assert rapi.get(f"/v2/images/{kept['id']}/file").status_code == 200
    assert replicated.logs().count("sweep removed") >= 3
    foreign.unlink()


def test_deleting_a_queued_image_removes_its_leftover_file(replicated, rapi):
    image = rapi.create(name="leftover", disk_format="raw", container_format="bare")
    leftover = replicated.datadir / image["id"]
    leftover.write_bytes(b"a complete upload whose completion was never recorded")
    future = time.time() + 3600  # out of the sweep's reach: only the delete removes it
    os.utime(leftover, (future, future))
    assert rapi.delete(f"/v2/images/{image['id']}").status_code == 204
    wait_for(lambda: not leftover.exists(), what="the leftover file to go with the image")
