"""Moving image bytes through the gateway with as few copies as the server allows.

Uploads: gunicorn's ``wsgi.input.read(n)`` gathers ``n`` bytes through a BytesIO and
slices them (four copies of every byte); for an image upload that was most of the
gateway's CPU. When the body has a known length, ``forward_body`` sends on what gunicorn
has already read and splices the rest from the client's socket to the store's, keeping
gunicorn's reader bookkeeping right. Chunked bodies and other servers are read and sent
block by block.

Downloads: after the first block (which carries gunicorn's status line and headers),
``download_body`` moves the rest from the store's socket to the client's with ``splice``
through a pipe, so the bytes never enter Python. It falls back to reading and yielding
blocks where splicing is impossible (no plain client socket, TLS, another server)."""

from __future__ import annotations

import fcntl
import os
import select
import socket
import ssl
from collections.abc import Iterator

try:  # the gateway runs under gunicorn; tests may drive the app without it
    from gunicorn.http.body import Body, LengthReader
except ImportError:  # pragma: no cover
    Body = LengthReader = None


PIPE_SIZE = 1 << 20


class SourceBroken(Exception):
    """The side bytes are read from failed or ended early (errors of the side they are
    written to stay OSErrors)."""


def forward_body(environ: dict, target: socket.socket, timeout: float) -> int | None:
    """Send a request body of known length to ``target`` without it entering Python
    (past what gunicorn had read ahead); returns the bytes sent, or None when this
    request cannot be spliced (the caller then reads it block by block)."""
    body = environ.get("wsgi.input")
    reader = getattr(body, "reader", None)
    client = _client_socket(environ)
    if (
        Body is None
        or client is None
        or not isinstance(body, Body)
        or not isinstance(reader, LengthReader)
        or body.buf.tell()
    ):
        return None
    length = reader.length
    ahead = reader.unreader.take_buffered()
    if len(ahead) > length:  # a pipelined next request: not ours to send
        reader.unreader.unread(ahead[length:])
        ahead = ahead[:length]
    target.sendall(ahead)
    _splice(client, target, length - len(ahead), timeout)
    reader.length = 0
    return length


def _client_socket(environ: dict) -> socket.socket | None:
    sock = environ.get("gunicorn.socket")
    if isinstance(sock, socket.socket) and not isinstance(sock, ssl.SSLSocket):
        return sock
    return None


def _wait(sock: socket.socket, write: bool, timeout: float) -> None:
    ready = (
        select.select([], [sock], [], timeout) if write else select.select([sock], [], [], timeout)
    )
    if not any(ready):
        raise TimeoutError("the data hop stalled")


def _splice(source: socket.socket, target: socket.socket, length: int, timeout: float) -> None:
    """Move ``length`` bytes from ``source`` to ``target`` inside the kernel."""
    read_end, write_end = os.pipe()
    try:
        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        while length > 0:
            try:
                moved = os.splice(source.fileno(), write_end, min(length, PIPE_SIZE))
            except BlockingIOError:
                try:
                    _wait(source, False, timeout)
                except TimeoutError as exc:
                    raise SourceBroken(str(exc)) from exc
                continue
            except OSError as exc:
                raise SourceBroken(str(exc)) from exc
            if moved == 0:
                raise SourceBroken("the sending side closed the connection early")
            length -= moved
            while moved:
                try:
                    moved -= os.splice(read_end, target.fileno(), moved)
                except BlockingIOError:
                    _wait(target, True, timeout)
    finally:
        os.close(read_end)
        os.close(write_end)


def download_body(
    environ: dict, response, source: socket.socket, length: int, block: int, timeout: float
) -> Iterator[bytes]:
    """The ``length`` bytes of ``response`` (an http.client response on ``source``) as
    a WSGI body, spliced to the client after the first block where possible."""
    first = response.read(min(block, length))
    yield first
    remaining = length - len(first)
    target = _client_socket(environ)
    if remaining > 0 and target is not None:
        buffered = response.fp.peek(1)[:remaining]  # what http.client read ahead
        if buffered:
            yield response.fp.read(len(buffered))
            remaining -= len(buffered)
        _splice(source, target, remaining, timeout)
        return
    while remaining > 0:
        chunk = response.read(min(block, remaining))
        if not chunk:
            return
        remaining -= len(chunk)
        yield chunk


def _sendfile(target: socket.socket, fd: int, offset: int, length: int, timeout: float) -> None:
    """Send ``length`` bytes of the file ``fd`` from ``offset`` to ``target`` in the
    kernel."""
    while length > 0:
        try:
            sent = os.sendfile(target.fileno(), fd, offset, min(length, 16 << 20))
        except BlockingIOError:
            _wait(target, True, timeout)
            continue
        if sent == 0:
            raise OSError("the file ended early")
        offset, length = offset + sent, length - sent


def file_body(
    environ: dict, fd: int, offset: int, length: int, block: int, timeout: float
) -> Iterator[bytes]:
    """``length`` bytes of the open file ``fd`` from ``offset`` as a WSGI body (a cache
    hit): the first block through the server (it sends the headers with it), the rest
    with ``sendfile``. The caller closes ``fd`` when the response is closed."""
    first = os.pread(fd, min(block, length), offset)
    yield first
    offset, length = offset + len(first), length - len(first)
    target = _client_socket(environ)
    if target is not None:
        _sendfile(target, fd, offset, length, timeout)
        return
    while length > 0:
        chunk = os.pread(fd, min(block, length), offset)
        if not chunk:
            return
        offset, length = offset + len(chunk), length - len(chunk)
        yield chunk


def fill_body(
    environ: dict, response, source: socket.socket, length: int, block: int, timeout: float, fill
) -> Iterator[bytes]:
    """Like ``download_body``, writing the bytes into the cache ``fill`` (a
    services.cache.fill.Fill) on their way: past the first block they go from the store's
    socket into the cache file (``splice``) and from there to the client (``sendfile``),
    never entering Python. The caller finishes the fill once the body is sent
    (``fill.written == length``); a body cut short aborts it."""
    try:
        first = response.read(min(block, length))
        fill.write(first)
        yield first
        remaining = length - len(first)
        target = _client_socket(environ)
        if remaining > 0 and target is not None:
            buffered = response.fp.peek(1)[:remaining]  # what http.client read ahead
            if buffered:
                chunk = response.fp.read(len(buffered))
                fill.write(chunk)
                yield chunk
                remaining -= len(chunk)
            _splice_through_file(source, target, fill, remaining, timeout)
            return
        while remaining > 0:
            chunk = response.read(min(block, remaining))
            if not chunk:
                return
            fill.write(chunk)
            remaining -= len(chunk)
            yield chunk
    finally:
        if fill.written != length:
            fill.abort()


def _splice_through_file(source: socket.socket, target: socket.socket, fill, length, timeout):
    read_end, write_end = os.pipe()
    try:
        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        while length > 0:
            try:
                moved = os.splice(source.fileno(), write_end, min(length, PIPE_SIZE))
            except BlockingIOError:
                try:
                    _wait(source, False, timeout)
                except TimeoutError as exc:
                    raise SourceBroken(str(exc)) from exc
                continue
            except OSError as exc:
                raise SourceBroken(str(exc)) from exc
            if moved == 0:
                raise SourceBroken("the sending side closed the connection early")
            start, left = fill.written, moved
            while left:
                done = os.splice(read_end, fill.fd, left, offset_dst=fill.written)
                fill.written += done
                left -= done
            _sendfile(target, fill.fd, start, moved, timeout)
            length -= moved
    finally:
        os.close(read_end)
        os.close(write_end)
