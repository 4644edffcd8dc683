"""Downloads handed over as an open file, between a store replica and a gateway on the
same host.

A download relayed over the data port crosses two loopback TCP connections (store →
gateway → client) and costs three processes' CPU; on a 2-core VM it ran at ~0.6x of
Glance's, which reads the file in the API process. When the image is in a file store
the replica can read, the replica's answer to ``open_download`` also names an abstract
Unix socket (Linux: no file, gone with the process). A gateway that can connect to it
is on the same host (and network namespace); it sends the download's one-time token
and receives the open file (``SCM_RIGHTS``), then writes the range it asked
``open_download`` for to the client itself from a mapping of the file, as it sends a
cache hit.
The store replica still decides: it checks the session, resolves the location, opens
the file; the gateway never sees a path. When the download ends the gateway reports the
bytes it sent, so the replica logs the transfer and sends Glance's ``image.send`` as for
a relayed download. A gateway that cannot connect (another host or container) uses the
data port as before.

The wire, one connection per download: the gateway sends ``<token> <request id>\\n``;
the replica answers one JSON message, ``{}`` with the file descriptor attached, or
``{"exc_type", "value"}`` (a typed error, as the data port answers) without one; at the
end the gateway sends ``<bytes sent>\\n`` and closes.
"""

from __future__ import annotations

import array
import json
import os
import socket
from dataclasses import dataclass

from services.common.errors import ServiceUnavailable, TesseraError, from_remote

MESSAGE_MAX = 4096


def offer(conn: socket.socket, fd: int) -> None:
    """The replica's answer: the open file ``fd`` (the caller closes its own ``fd``
    after; the gateway holds a duplicate)."""
    conn.sendmsg([b"{}"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])


def refuse(conn: socket.socket, exc: TesseraError) -> None:
    conn.sendall(json.dumps({"exc_type": type(exc).__name__, "value": str(exc)}).encode())


def read_line(conn: socket.socket, limit: int = 64) -> str | None:
    """One ``\\n``-ended line of at most ``limit`` bytes, None when the peer closed or
    sent something else."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(limit + 1 - len(data))
        if not chunk or len(data) + len(chunk) > limit:
            return None
        data += chunk
    return data[:-1].decode("ascii", "replace")


@dataclass
class HandedFile:
    """An open file the replica handed over: send from it, then ``close(sent)``."""

    fd: int
    conn: socket.socket

    def close(self, sent: int) -> None:
        try:
            self.conn.sendall(f"{sent}\n".encode())
        except OSError:
            pass  # the replica went away: it logs the download as cut short
        finally:
            self.conn.close()
            os.close(self.fd)


def ask(address: str, token: str, request_id: str, timeout: float) -> HandedFile | None:
    """The file of the download ``token`` from the replica listening on ``address``;
    None when no replica listens there for this process (another host or namespace, or
    the replica stopped): the caller relays over the data port instead. A refusal
    raises the replica's typed error."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(timeout)
    try:
        conn.connect(address)
    except OSError:
        conn.close()
        return None
    try:
        conn.sendall(f"{token} {request_id}\n".encode())
        message, ancillary, _, _ = conn.recvmsg(MESSAGE_MAX, socket.CMSG_SPACE(4))
        fds = [
            fd
            for level, kind, data in ancillary
            if (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS)
            for fd in array.array("i", data[: len(data) - len(data) % 4])
        ]
        header = json.loads(message or b"{}")
    except (OSError, ValueError):
        conn.close()
        raise ServiceUnavailable(
            "The store replica holding the image data stopped answering; try again later."
        ) from None
    if not fds:
        conn.close()
        raise from_remote(header.get("exc_type", ""), header.get("value", "")) or (
            ServiceUnavailable("The store failed to hand the image data over; try again later.")
        )
    for extra in fds[1:]:
        os.close(extra)
    return HandedFile(fds[0], conn)
