"""The filling download's kernel path: bytes spliced from the store's socket to the
client's and tee'd into the cache file by a writer thread (services/api/body_stream.py)."""

from __future__ import annotations

import os
import socket
import threading

from services.api.body_stream import _splice_and_tee, _tee


class FakeFill:
    def __init__(self, fd: int):
        self.fd, self.written = fd, 0


def test_tee_duplicates_without_consuming():
    a_read, a_write = os.pipe()
    b_read, b_write = os.pipe()
    os.write(a_write, b"hello")
    assert _tee(a_read, b_write, 5) == 5
    assert os.read(b_read, 10) == b"hello" and os.read(a_read, 10) == b"hello"
    for fd in (a_read, a_write, b_read, b_write):
        os.close(fd)


def test_client_and_file_get_every_byte(tmp_path):
    data = os.urandom(5 * (1 << 20) + 17)
    store, source = socket.socketpair()
    target, client = socket.socketpair()
    received = bytearray()

    def send():
        store.sendall(data)
        store.close()

    def receive():
        while chunk := client.recv(1 << 20):
            received.extend(chunk)

    threads = [threading.Thread(target=send), threading.Thread(target=receive)]
    for thread in threads:
        thread.start()
    with open(tmp_path / "fill", "w+b") as handle:
        fill = FakeFill(handle.fileno())
        source.settimeout(10)  # non-blocking at the descriptor, as http.client's
        target.settimeout(10)
        assert _splice_and_tee(source, target, fill, len(data), timeout=10)
        target.close()
        for thread in threads:
            thread.join()
        assert fill.written == len(data)
        assert (tmp_path / "fill").read_bytes() == data
    assert bytes(received) == data
    source.close()
    client.close()
