"""A file's bytes written to a socket from a mapping of the file
(services/common/mapped_send.py: the gateway's cache hits, the store's downloads): any
offset and length, across several mapping windows, counted as sent; a file shorter than
asked for is FileEnded."""

from __future__ import annotations

import os
import select
import socket
import threading

import pytest

from services.common import mapped_send
from services.common.mapped_send import FileEnded, send_mapped


def _received(sock: socket.socket, out: list) -> None:
    chunks = []
    while chunk := sock.recv(1 << 16):
        chunks.append(chunk)
    out.append(b"".join(chunks))


def _send(path, offset: int, length: int) -> tuple[bytes, int]:
    sender, receiver = socket.socketpair()
    sender.setblocking(False)  # as a gateway's client socket with a timeout
    out: list = []
    reader = threading.Thread(target=_received, args=(receiver, out))
    reader.start()
    counted = [0]

    def count(n: int) -> None:
        counted[0] += n

    def wait() -> None:
        select.select([], [sender], [], 10)

    fd = os.open(path, os.O_RDONLY)
    try:
        send_mapped(sender.fileno(), fd, offset, length, wait, count)
    finally:
        os.close(fd)
        sender.close()
        reader.join()
        receiver.close()
    return out[0], counted[0]


@pytest.fixture
def data_file(tmp_path, monkeypatch):
    monkeypatch.setattr(mapped_send, "MAP_WINDOW", 3 * os.sysconf("SC_PAGE_SIZE"))
    monkeypatch.setattr(mapped_send, "SEND_BLOCK", 5000)
    data = os.urandom(10 * os.sysconf("SC_PAGE_SIZE") + 123)
    path = tmp_path / "cached"
    path.write_bytes(data)
    return path, data


@pytest.mark.parametrize(
    ("offset", "length"),
    [(0, None), (1, 100), (4095, 9000), (4096, 4096), (12345, None), (0, 1)],
)
def test_any_range_across_windows(data_file, offset, length):
    path, data = data_file
    length = len(data) - offset if length is None else length
    received, counted = _send(path, offset, length)
    assert received == data[offset : offset + length]
    assert counted == length


def test_a_file_shorter_than_asked_for_is_an_error(data_file):
    path, data = data_file
    with pytest.raises(FileEnded):
        _send(path, 0, len(data) + 1)
