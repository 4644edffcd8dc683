"""Uploading and downloading image data through the gateway and a store replica, on the
file store, once on SQLite and once on MariaDB."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
import uuid
from contextlib import contextmanager

import pytest
import requests

from services.api.rpc_client import RpcClient
from services.common import handoff
from services.common.config import amqp_uri, load_config
from services.common.context import RequestContext
from services.common.errors import NotFound
from tests.conftest import Api, random_image
from tests.integration.test_images_api import error_of
from tests.stack import Stack

MiB = 1 << 20
OCTETS = {"Content-Type": "application/octet-stream"}


def upload(api, image_id: str, data, **headers):
    return api.put(f"/v2/images/{image_id}/file", data=data, headers={**OCTETS, **headers})


def active_image(api, name: str, data: bytes) -> dict:
    """A new raw image named ``name`` with ``data`` uploaded; checks that it went active."""
    image = api.create(name=name, disk_format="raw", container_format="bare")
    resp = upload(api, image["id"], data)
    assert resp.status_code == 204, resp.text
    assert api.get(f"/v2/images/{image['id']}").json()["status"] == "active"
    return image


def wait_for(predicate, timeout: float = 15, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def raw_upload(url: str, api, image_id: str, declared: int) -> socket.socket:
    """A PUT of image data sent by hand: the headers promise ``declared`` bytes; the
    caller sends (or withholds) the body on the returned socket."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(
        (
            f"PUT /v2/images/{image_id}/file HTTP/1.1\r\nHost: x\r\n"
            f"X-Project-Id: {api.project}\r\nX-Roles: member\r\n"
            f"Content-Type: application/octet-stream\r\nConnection: close\r\n"
            f"Content-Length: {declared}\r\n\r\n"
        ).encode()
    )
    return sock


@pytest.mark.parametrize("size", [0, 1, MiB + 3, 9 * MiB + 1])
def test_upload_download_roundtrip(api, image, size):
    data = random_image(size)
    resp = upload(api, image["id"], data)
    assert resp.status_code == 204, resp.text
    shown = api.get(f"/v2/images/{image['id']}").json()
    assert shown["status"] == "active"
    assert shown["size"] == size
    assert shown["checksum"] == hashlib.md5(data).hexdigest()
    assert shown["os_hash_algo"] == "sha512"
    assert shown["os_hash_value"] == hashlib.sha512(data).hexdigest()
    assert shown["virtual_size"] == (size or None)  # raw stays raw; Glance leaves 0 unset
    got = api.get(f"/v2/images/{image['id']}/file")
    assert got.status_code == 200
    assert got.headers["Content-Length"] == str(size)
    assert got.headers["Content-MD5"] == shown["checksum"]
    assert got.content == data


def test_chunked_upload(api, image):
    data = random_image(3 * MiB + 11)

    def body():
        for i in range(0, len(data), 100_000):
            yield data[i : i + 100_000]

    assert upload(api, image["id"], body()).status_code == 204
    assert api.get(f"/v2/images/{image['id']}/file").content == data
    assert api.get(f"/v2/images/{image['id']}").json()["size"] == len(data)


def test_ranges(api, image):
    data = random_image(MiB)
    upload(api, image["id"], data)
    path = f"/v2/images/{image['id']}/file"
    for header, expected, content_range in [
        ("bytes=0-9", data[:10], f"bytes 0-9/{MiB}"),
        ("bytes=-10", data[-10:], f"bytes {MiB - 10}-{MiB - 1}/{MiB}"),
        (f"bytes={MiB - 5}-", data[-5:], f"bytes {MiB - 5}-{MiB - 1}/{MiB}"),
        ("bytes=100-199999999", data[100:], f"bytes 100-{MiB - 1}/{MiB}"),
    ]:
        resp = api.get(path, headers={"Range": header})
        assert resp.status_code == 206, header
        assert resp.content == expected
        assert resp.headers["Content-Range"] == content_range
    resp = api.get(path, headers={"Range": f"bytes={MiB}-"})
    error_of(resp, 416)
    assert resp.headers["Content-Range"] == f"bytes */{MiB}"
    error_of(api.get(path, headers={"Range": "lines=1-2"}), 416)


def test_range_forms_as_glance_reads_them(api, image):
    """werkzeug parses the header as webob does for Glance: spaces and any case; a
    request's Content-Range still selects bytes; several ranges are a 400, a malformed
    or unsatisfiable range a 416."""
    data = random_image(1000)
    upload(api, image["id"], data)
    path = f"/v2/images/{image['id']}/file"
    for headers, expected, content_range in [
        ({"Range": "bytes = 10-19"}, data[10:20], "bytes 10-19/1000"),
        ({"Range": "BYTES=990-"}, data[990:], "bytes 990-999/1000"),
        ({"Range": "bytes=-5000"}, data, "bytes 0-999/1000"),  # more than there is
        ({"Content-Range": "bytes 0-9/*"}, data[:10], "bytes 0-9/1000"),
        ({"Content-Range": "bytes 100-199/1000"}, data[100:200], "bytes 100-199/1000"),
    ]:
        resp = api.get(path, headers=headers)
        assert resp.status_code == 206, (headers, resp.text)
        assert resp.content == expected, headers
        assert resp.headers["Content-Range"] == content_range, headers
    assert "multiple ranges" in error_of(api.get(path, headers={"Range": "bytes=0-1,5-6"}), 400)
    for headers in [
        {"Range": "bytes=9-5"},
        {"Range": "bytes=-0"},
        {"Range": "bytes=a-b"},
        {"Range": "bytes=0-9x"},
        {"Range": ""},
        {"Content-Range": "bytes 1000-1009/*"},
        {"Content-Range": "bytes 990-1009/*"},
        {"Content-Range": "bytes 0-9"},
    ]:
        resp = api.get(path, headers=headers)
        error_of(resp, 416)
        assert resp.headers["Content-Range"] == "bytes */1000", headers


def test_no_data_is_204(api, image):
    resp = api.get(f"/v2/images/{image['id']}/file")
    assert resp.status_code == 204 and resp.content == b""


def test_upload_errors(api, other_api, image):
    path = f"/v2/images/{image['id']}/file"
    error_of(api.put(path, data=b"x", headers={"Content-Type": "text/plain"}), 415)
    error_of(upload(api, str(uuid.uuid4()), b"x"), 404)
    error_of(upload(other_api, image["id"], b"x"), 404)  # not visible to them
    error_of(upload(api, image["id"], b"abc", **{"x-openstack-image-size": "5"}), 400)
    error_of(upload(api, image["id"], b"abc", **{"x-openstack-image-size": "many"}), 400)
    assert api.get(f"/v2/images/{image['id']}").json()["status"] == "queued"
    assert upload(api, image["id"], b"abc").status_code == 204
    error_of(upload(api, image["id"], b"again"), 409)  # only a queued image takes data
    assert api.get(f"/v2/images/{image['id']}/file").content == b"abc"


def test_short_body_leaves_image_queued_and_no_data(stack, api, image):
    """A client that promises 4 MiB and hangs up after 1 MiB."""
    with raw_upload(stack.url, api, image["id"], 4 * MiB) as sock:
        sock.sendall(random_image(MiB))
        time.sleep(0.5)
    wait_for(
        lambda: api.get(f"/v2/images/{image['id']}").json()["status"] == "queued",
        what="the image to be queued again",
    )
    wait_for(lambda: not list(stack.datadir.glob(f"{image['id']}*")), what="no data left")
    # and the image still takes a good upload
    assert upload(api, image["id"], b"good").status_code == 204


def test_concurrent_uploads_have_one_winner(api, image):
    data = random_image(8 * MiB)
    results = []

    def attempt():
        results.append(upload(api, image["id"], data).status_code)

    threads = [threading.Thread(target=attempt) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results).count(204) == 1, results
    assert all(code in (204, 409) for code in results), results
    assert api.get(f"/v2/images/{image['id']}/file").content == data


def test_delete_removes_the_data(stack, api, image):
    upload(api, image["id"], random_image(1000))
    assert (stack.datadir / image["id"]).exists()
    assert api.delete(f"/v2/images/{image['id']}").status_code == 204
    wait_for(lambda: not (stack.datadir / image["id"]).exists(), what="the data file to go")
    error_of(api.get(f"/v2/images/{image['id']}/file"), 404)


def test_image_deleted_during_upload_is_410(stack, api, image):
    with raw_upload(stack.url, api, image["id"], 2 * MiB) as sock:
        sock.sendall(random_image(MiB))
        wait_for(
            lambda: api.get(f"/v2/images/{image['id']}").json()["status"] == "saving",
            what="the upload to start",
        )
        assert api.delete(f"/v2/images/{image['id']}").status_code == 204
        sock.sendall(random_image(MiB))
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 410"), reply[:200]
    wait_for(lambda: not list(stack.datadir.glob(f"{image['id']}*")), what="no data left")


def test_large_downloads_keep_the_connection_usable(api, image):
    """Past the first block the gateway splices the bytes; the connection stays in step
    for the next requests on it (keep-alive)."""
    data = random_image(7 * MiB + 5)
    upload(api, image["id"], data)
    for _ in range(2):
        assert api.get(f"/v2/images/{image['id']}/file").content == data
        part = api.get(f"/v2/images/{image['id']}/file", headers={"Range": f"bytes={MiB}-"})
        assert part.content == data[MiB:]
        assert api.get(f"/v2/images/{image['id']}").json()["size"] == len(data)


class Endless:
    """A request body that declares ``declared`` bytes (requests sends Content-Length
    from ``len``) and yields MiB blocks, counting them, up to ``limit`` bytes."""

    def __init__(self, declared: int, limit: int = 256 * MiB):
        self.declared, self.limit, self.sent = declared, limit, 0

    def __len__(self) -> int:
        return self.declared

    def __iter__(self):
        block = random_image(MiB)
        while self.sent < self.limit:
            self.sent += len(block)
            yield block


def assert_refused_up_front(api, image_id: str, body: Endless, **headers) -> str:
    """The upload is a 413 in the JSON error shape, answered at once though the client
    is still sending; the gateway read almost none of the body and the image stays
    queued. The answer closes the connection: the client must not send its next
    request on one the gateway closes once it has answered (it drains little of a
    body it did not read)."""
    started = time.monotonic()
    resp = upload(api, image_id, body, **headers)
    message = error_of(resp, 413)
    assert time.monotonic() - started < 10
    assert resp.headers["Connection"] == "close"
    assert body.sent < body.limit, "the server read the whole body before answering"
    assert api.get(f"/v2/images/{image_id}").json()["status"] == "queued"
    return message


def test_declared_size_over_the_cap_is_refused_up_front(api, image):
    """image_size_cap is 1 TiB by default: a 2 TiB Content-Length (or
    x-openstack-image-size with a chunked body) gets its 413 before any RPC."""
    message = assert_refused_up_front(api, image["id"], Endless(2 << 40))
    assert "image_size_cap" in message and str(2 << 40) in message

    body = Endless(0)  # sent chunked: only the header declares the size
    resp = upload(api, image["id"], iter(body), **{"x-openstack-image-size": str(2 << 40)})
    assert "image_size_cap" in error_of(resp, 413)
    assert body.sent < body.limit
    assert upload(api, image["id"], b"fits").status_code == 204


@pytest.fixture(scope="module")
def quota_stack(tmp_path_factory):
    """A stack (SQLite) whose projects may store 10 MB each."""
    stack = Stack(
        tmp_path_factory.mktemp("quota"), sections={"DEFAULT": {"user_storage_quota": "10MB"}}
    ).start()
    yield stack
    stack.cleanup()


def test_declared_size_over_the_storage_quota_is_refused_up_front(quota_stack):
    """The quota needs the project's usage, which the store learns when it claims the
    image: it refuses there, before its data port takes a byte, and queues the image
    again."""
    api = Api(quota_stack.url, project=f"quota-{uuid.uuid4().hex[:8]}")
    image = api.create(name="over", disk_format="raw", container_format="bare")
    message = assert_refused_up_front(api, image["id"], Endless(100 << 30))
    assert "exceeds" in message and "user_storage_quota" in message
    assert upload(api, image["id"], random_image(MiB)).status_code == 204
    second = api.create(name="second", disk_format="raw", container_format="bare")
    assert_refused_up_front(api, second["id"], Endless(1 << 30))  # 9 MiB left
    assert upload(api, second["id"], random_image(MiB)).status_code == 204


@pytest.fixture
def rpc(stack):
    client = RpcClient(amqp_uri(load_config(["--config-file", str(stack.config)])), 10)
    yield client
    client.close()


@contextmanager
def file_store_broken(stack):
    """The file store's directory is replaced by a file: every write fails (as root,
    which permissions would not stop)."""
    away = stack.datadir.with_name("images.away")
    stack.datadir.rename(away)
    stack.datadir.write_bytes(b"")
    try:
        yield
    finally:
        stack.datadir.unlink()
        away.rename(stack.datadir)


def test_data_port_answers_each_typed_error_with_its_status(stack, api, image, rpc):
    """The store's data port, asked directly: a used download URL is a 404 and a store
    that cannot write a 503, each naming its typed error (not a 400 for all)."""
    ctx = RequestContext(project_id=api.project, roles=("member", "reader"))
    upload(api, image["id"], b"abc")
    location = (stack.datadir / image["id"]).resolve().as_uri()
    url = rpc.call("store", "open_download", ctx, location)["url"]
    assert requests.get(url, timeout=10).content == b"abc"
    used = requests.get(url, timeout=10)
    assert (used.status_code, used.json()["exc_type"]) == (404, "NotFound")

    other = api.create(name="unwritable", disk_format="raw", container_format="bare")
    session = rpc.call("store", "open_upload", ctx, other["id"], 3)
    with file_store_broken(stack):
        resp = requests.put(session["url"], data=b"abc", headers=OCTETS, timeout=10)
    assert (resp.status_code, resp.json()["exc_type"]) == (503, "StoreUnavailable")
    assert api.get(f"/v2/images/{other['id']}").json()["status"] == "queued"


def test_store_unavailable_is_503(stack, api, image):
    with file_store_broken(stack):
        assert "file store" in error_of(upload(api, image["id"], b"abc"), 503)
    assert api.get(f"/v2/images/{image['id']}").json()["status"] == "queued"
    assert upload(api, image["id"], b"abc").status_code == 204


def test_a_download_on_the_same_host_is_handed_over_as_an_open_file(stack, api, image, rpc):
    """services/common/handoff.py: the replica's answer names its hand-off socket; asked
    with the one-time token it hands over the open file, once. The API's downloads on
    this host go that way (the replica's log line says so)."""
    ctx = RequestContext(project_id=api.project, roles=("member", "reader"))
    upload(api, image["id"], b"abcdef")
    location = (stack.datadir / image["id"]).resolve().as_uri()
    session = rpc.call("store", "open_download", ctx, location, 1, 3)
    handed = handoff.ask(session["handoff"], session["token"], "req-test", 10)
    try:
        assert os.pread(handed.fd, 3, 1) == b"bcd"
    finally:
        handed.close(3)
    with pytest.raises(NotFound):
        handoff.ask(session["handoff"], session["token"], "req-test", 10)  # used
    assert requests.get(session["url"], timeout=10).status_code == 404
    assert handoff.ask("\0tessera-nobody-listens", session["token"], "req-test", 10) is None
    ranged = api.get(f"/v2/images/{image['id']}/file", headers={"Range": "bytes=2-"})
    assert (ranged.status_code, ranged.content) == (206, b"cdef")
    wait_for(lambda: handed_over(stack, image["id"]) == 1, what="the download handed over")


def handed_over(stack, image_id: str) -> int:
    """How many downloads of the image the store replica handed to the gateway."""
    return sum(
        "handed to the gateway" in line
        for line in stack.logs().splitlines()
        if f"sent image {image_id}" in line
    )


def test_downloads_cross_the_data_port_with_the_handoff_off(tmp_path_factory):
    """[store] local_handoff = False: no socket offered, downloads (whole and ranged)
    relayed from the data port as between hosts."""
    stack = Stack(
        tmp_path_factory.mktemp("relay"), sections={"store": {"local_handoff": "False"}}
    ).start()
    try:
        api = Api(stack.url, project=f"relay-{uuid.uuid4().hex[:8]}")
        image = api.create(name="relayed", disk_format="raw", container_format="bare")
        data = random_image(3 * MiB + 5)
        assert upload(api, image["id"], data).status_code == 204
        assert api.get(f"/v2/images/{image['id']}/file").content == data
        ranged = api.get(f"/v2/images/{image['id']}/file", headers={"Range": "bytes=7-"})
        assert (ranged.status_code, ranged.content) == (206, data[7:])
        ctx = RequestContext(project_id=api.project, roles=("member", "reader"))
        location = (stack.datadir / image["id"]).resolve().as_uri()
        client = RpcClient(amqp_uri(load_config(["--config-file", str(stack.config)])), 10)
        try:
            assert "handoff" not in client.call("store", "open_download", ctx, location)
        finally:
            client.close()
        sent = f"sent image {image['id']}"
        wait_for(lambda: stack.logs().count(sent) == 2, what="both downloads logged")
        assert handed_over(stack, image["id"]) == 0
    finally:
        stack.cleanup()
