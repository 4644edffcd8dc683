"""Slow and stalled clients do not starve the gateway (services/api/front.py): 200
connections trickling their headers and 40 uploads that stop sending, while another
client keeps asking for one image. Timeouts are short here so the module stays fast;
the figures (p50/p99 of ``show`` during the attack) are printed, not asserted."""

from __future__ import annotations

import socket
import threading
import time
import uuid

import pytest

from tests.conftest import Api, random_image
from tests.integration.test_image_data import raw_upload, wait_for
from tests.stack import Stack

HEADER_TIMEOUT = 2
UPLOAD_IDLE_TIMEOUT = 6
SLOW_HEADERS = 200
STALLED_UPLOADS = 40
MiB = 1 << 20


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """2 gateway workers of 16 threads each: fewer than the stalled uploads, which the
    image data pool takes (services/api/front.py); short timeouts."""
    running = Stack(
        tmp_path_factory.mktemp("slow-clients"),
        workers=2,
        threads=16,
        client_header_timeout=HEADER_TIMEOUT,
        upload_idle_timeout=UPLOAD_IDLE_TIMEOUT,
    ).start()
    yield running
    running.cleanup()


@pytest.fixture
def api(stack):
    return Api(stack.url, project=f"project-{uuid.uuid4().hex[:8]}")


def _address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


class SlowHeaders:
    """``count`` connections that each send a request line and then one header byte
    every half second, never finishing; one the gateway closes is opened again."""

    def __init__(self, url: str, count: int):
        self.address = _address(url)
        self.socks = [self._open() for _ in range(count)]
        self.reopened = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._trickle, daemon=True)
        self.thread.start()

    def _open(self) -> socket.socket:
        sock = socket.create_connection(self.address)
        sock.sendall(b"GET /v2/images HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        return sock

    def _trickle(self):
        while not self.stop.wait(0.5):
            for i, sock in enumerate(self.socks):
                try:
                    sock.send(b"a")
                except OSError:  # dropped by the header timeout: come back
                    sock.close()
                    self.socks[i] = self._open()
                    self.reopened += 1

    def close(self):
        self.stop.set()
        self.thread.join()
        for sock in self.socks:
            sock.close()


def _response(sock: socket.socket) -> bytes:
    """One whole response (headers and a Content-Length body) read from ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_show_answers_during_slow_header_and_stalled_upload_attack(stack, api):
    target = api.create(name="target", disk_format="raw", container_format="bare")
    uploads = [
        api.create(name=f"stalled-{i}", disk_format="raw", container_format="bare")
        for i in range(STALLED_UPLOADS)
    ]
    stalled = []
    for image in uploads:  # each promises 4 MiB, sends 64 KiB and stops
        sock = raw_upload(stack.url, api, image["id"], 4 * MiB)
        sock.sendall(random_image(64 << 10))
        stalled.append(sock)
    slow = SlowHeaders(stack.url, SLOW_HEADERS)
    try:
        time.sleep(1)  # every attacking connection is in
        latencies, failures = [], []
        deadline = time.monotonic() + 4  # within the upload idle timeout: all still stalled
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                resp = api.session.get(f"{stack.url}/v2/images/{target['id']}", timeout=5)
                ok = resp.status_code == 200
            except OSError as exc:
                ok, resp = False, exc
            took = time.monotonic() - started
            latencies.append(took)
            if not ok or took > 2:
                failures.append((round(took, 3), getattr(resp, "status_code", resp)))
        latencies.sort()
        p50 = latencies[len(latencies) // 2] * 1000
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
        print(
            f"\nshow during {SLOW_HEADERS} slow-header connections and {STALLED_UPLOADS} "
            f"stalled uploads: {len(latencies)} requests, p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
            f"max {latencies[-1] * 1000:.1f} ms; slow-header connections dropped and "
            f"reopened: {slow.reopened}"
        )
        assert not failures, failures
        assert len(latencies) >= 20
        assert slow.reopened > 0  # the header timeout dropped them
    finally:
        slow.close()

    # the stalled uploads are aborted after the idle timeout: queued again, no data left
    def all_queued():
        statuses = {api.get(f"/v2/images/{image['id']}").json()["status"] for image in uploads}
        return statuses == {"queued"}

    wait_for(all_queued, timeout=UPLOAD_IDLE_TIMEOUT + 20, what="the stalled uploads aborted")
    wait_for(
        lambda: not [p for image in uploads for p in stack.datadir.glob(f"{image['id']}*")],
        what="no partial data left",
    )
    for sock in stalled:
        sock.close()


def test_stalled_upload_is_told_408_and_can_be_retried(stack, api):
    image = api.create(name="stalls", disk_format="raw", container_format="bare")
    with raw_upload(stack.url, api, image["id"], MiB) as sock:
        sock.sendall(random_image(1000))
        sock.settimeout(UPLOAD_IDLE_TIMEOUT + 20)
        answer = _response(sock)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"upload_idle_timeout" in answer
    assert api.get(f"/v2/images/{image['id']}").json()["status"] == "queued"
    assert not list(stack.datadir.glob(f"{image['id']}*"))
    resp = api.put(
        f"/v2/images/{image['id']}/file",
        data=b"whole",
        headers={"Content-Type": "application/octet-stream"},
    )
    assert resp.status_code == 204, resp.text


@pytest.mark.parametrize(
    "partial",
    [
        b"GET /v2/images HTTP/1.1\r\nHost: x\r\n",  # headers never finished
        # a create whose 100-byte JSON body stops after 9 bytes
        b"POST /v2/images HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"name": ',
    ],
    ids=["headers", "small-body"],
)
def test_slow_request_gets_408_and_is_closed(stack, partial):
    with socket.create_connection(_address(stack.url)) as sock:
        sock.sendall(partial)
        sock.settimeout(HEADER_TIMEOUT + 10)
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert sock.recv(65536) == b""  # closed


def test_requests_in_pieces_and_kept_alive_connections_are_served(stack, api):
    """The gathering loop serves a request that arrives in several packets, a small body
    with its headers, and the next request on a kept-alive connection."""
    body = b'{"name": "pieces", "disk_format": "raw", "container_format": "bare"}'
    request = (
        b"POST /v2/images HTTP/1.1\r\nHost: x\r\nX-Project-Id: "
        + api.project.encode()
        + b"\r\nX-Roles: member\r\nContent-Type: application/json\r\n"
        + b"Content-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )
    with socket.create_connection(_address(stack.url)) as sock:
        sock.settimeout(10)
        for piece in range(0, len(request), 40):
            sock.sendall(request[piece : piece + 40])
            time.sleep(0.05)
        answer = _response(sock)
        assert answer.startswith(b"HTTP/1.1 201"), answer[:300]
        sock.sendall(
            b"GET /v2/images?name=pieces HTTP/1.1\r\nHost: x\r\nX-Project-Id: "
            + api.project.encode()
            + b"\r\nX-Roles: member\r\n\r\n"
        )
        answer = _response(sock)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
        assert b'"pieces"' in answer
