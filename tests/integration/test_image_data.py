"""Uploading and downloading image data through the gateway and a store replica, on the
file store, once on SQLite and once on MariaDB."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
import uuid

import pytest

from tests.integration.test_images_api import error_of

MiB = 1 << 20
OCTETS = {"Content-Type": "application/octet-stream"}


def upload(api, image_id: str, data, **headers):
    return api.put(f"/v2/images/{image_id}/file", data=data, headers={**OCTETS, **headers})


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
    data = os.urandom(size)
    resp = upload(api, image["id"], data)
    assert resp.status_code == 204, resp.text
    shown = api.get(f"/v2/images/{image['id']}").json()
    assert shown["status"] == "active"
    assert shown["size"] == size
    assert shown["checksum"] == hashlib.md5(data).hexdigest()
    assert shown["os_hash_algo"] == "sha512"
    assert shown["os_hash_value"] == hashlib.sha512(data).hexdigest()
    assert shown["virtual_size"] == size  # raw stays raw
    got = api.get(f"/v2/images/{image['id']}/file")
    assert got.status_code == 200
    assert got.headers["Content-Length"] == str(size)
    assert got.headers["Content-MD5"] == shown["checksum"]
    assert got.content == data


def test_chunked_upload(api, image):
    data = os.urandom(3 * MiB + 11)

    def body():
        for i in range(0, len(data), 100_000):
            yield data[i : i + 100_000]

    assert upload(api, image["id"], body()).status_code == 204
    assert api.get(f"/v2/images/{image['id']}/file").content == data
    assert api.get(f"/v2/images/{image['id']}").json()["size"] == len(data)


def test_ranges(api, image):
    data = os.urandom(MiB)
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
        sock.sendall(os.urandom(MiB))
        time.sleep(0.5)
    wait_for(
        lambda: api.get(f"/v2/images/{image['id']}").json()["status"] == "queued",
        what="the image to be queued again",
    )
    wait_for(lambda: not list(stack.datadir.glob(f"{image['id']}*")), what="no data left")
    # and the image still takes a good upload
    assert upload(api, image["id"], b"good").status_code == 204


def test_concurrent_uploads_have_one_winner(api, image):
    data = os.urandom(8 * MiB)
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
    upload(api, image["id"], os.urandom(1000))
    assert (stack.datadir / image["id"]).exists()
    assert api.delete(f"/v2/images/{image['id']}").status_code == 204
    wait_for(lambda: not (stack.datadir / image["id"]).exists(), what="the data file to go")
    error_of(api.get(f"/v2/images/{image['id']}/file"), 404)


def test_image_deleted_during_upload_is_410(stack, api, image):
    with raw_upload(stack.url, api, image["id"], 2 * MiB) as sock:
        sock.sendall(os.urandom(MiB))
        wait_for(
            lambda: api.get(f"/v2/images/{image['id']}").json()["status"] == "saving",
            what="the upload to start",
        )
        assert api.delete(f"/v2/images/{image['id']}").status_code == 204
        sock.sendall(os.urandom(MiB))
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 410"), reply[:200]
    wait_for(lambda: not list(stack.datadir.glob(f"{image['id']}*")), what="no data left")


def test_large_downloads_keep_the_connection_usable(api, image):
    """Past the first block the gateway splices the bytes; the connection stays in step
    for the next requests on it (keep-alive)."""
    data = os.urandom(7 * MiB + 5)
    upload(api, image["id"], data)
    for _ in range(2):
        assert api.get(f"/v2/images/{image['id']}/file").content == data
        part = api.get(f"/v2/images/{image['id']}/file", headers={"Range": f"bytes={MiB}-"})
        assert part.content == data[MiB:]
        assert api.get(f"/v2/images/{image['id']}").json()["size"] == len(data)
