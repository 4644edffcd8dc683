"""The local hand-off's wire (services/common/handoff.py), both ends over a real
abstract Unix socket: a file handed over with its range, a typed refusal, the report of
the bytes sent, and no socket at the address."""

from __future__ import annotations

import os
import socket
import threading
import uuid

import pytest

from services.common import handoff
from services.common.errors import DataNotFound, ServiceUnavailable


@pytest.fixture
def replica(tmp_path):
    """A one-connection replica: answers with ``answer(conn, token)``; what it heard
    (the token line and the report) lands in ``heard``."""
    address = f"\0tessera-test-{uuid.uuid4()}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address)
    listener.listen(1)
    heard: list = []

    def serve(answer):
        conn, _ = listener.accept()
        with conn:
            heard.append(handoff.read_line(conn, 128))
            answer(conn)
            heard.append(handoff.read_line(conn, 32))

    def start(answer):
        thread = threading.Thread(target=serve, args=(answer,), daemon=True)
        thread.start()
        return thread

    yield address, start, heard
    listener.close()


def test_a_file_is_handed_over_and_the_bytes_sent_reported(tmp_path, replica):
    address, start, heard = replica
    path = tmp_path / "image"
    path.write_bytes(b"0123456789")

    def answer(conn):
        fd = os.open(path, os.O_RDONLY)
        try:
            handoff.offer(conn, fd)
        finally:
            os.close(fd)  # the gateway holds its own duplicate

    thread = start(answer)
    handed = handoff.ask(address, "token", "req-1", 5)
    assert os.pread(handed.fd, 5, 2) == b"23456"
    handed.close(5)
    thread.join(5)
    assert heard == ["token req-1", "5"]
    with pytest.raises(OSError):
        os.fstat(handed.fd)  # closed with the connection


def test_a_refusal_raises_the_replicas_typed_error(replica):
    address, start, heard = replica
    start(lambda conn: handoff.refuse(conn, DataNotFound("gone from the store")))
    with pytest.raises(DataNotFound, match="gone from the store"):
        handoff.ask(address, "token", "req-1", 5)


def test_a_replica_that_hangs_up_is_unavailable(replica):
    address, start, _ = replica
    start(lambda conn: conn.shutdown(socket.SHUT_RDWR))
    with pytest.raises(ServiceUnavailable):
        handoff.ask(address, "token", "req-1", 5)


def test_no_replica_at_the_address_means_relay():
    assert handoff.ask(f"\0tessera-nobody-{uuid.uuid4()}", "token", "req-1", 5) is None


def test_a_long_or_unended_line_is_refused():
    left, right = socket.socketpair()
    with left, right:
        left.sendall(b"x" * 200)
        assert handoff.read_line(right, 128) is None
