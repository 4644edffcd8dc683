"""A cache hit's bytes written from a mapping of the cache file
(services/api/body_stream.py ``_send_file``): any offset and length, across several
mapping windows, counted as sent; a file shorter than asked for is an error."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from services.api import body_stream


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
    fd = os.open(path, os.O_RDONLY)
    try:
        body_stream._send_file(sender, fd, offset, length, 10, counted)
    finally:
        os.close(fd)
        sender.close()
        reader.join()
        receiver.close()
    return out[0], counted[0]


@pytest.fixture
def data_file(tmp_path, monkeypatch):
    monkeypatch.setattr(body_stream, "MAP_WINDOW", 3 * os.sysconf("SC_PAGE_SIZE"))
    monkeypatch.setattr(body_stream, "SEND_BLOCK", 5000)
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
    with pytest.raises(OSError, match="ended early"):
        _send(path, 0, len(data) + 1)
