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

import ctypes
import fcntl
import os
import select
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

try:  # the gateway runs under gunicorn; tests may drive the app without it
    from gunicorn.http.body import Body, LengthReader
except ImportError:  # pragma: no cover
    Body = LengthReader = None

from services.common.mapped_send import send_mapped

PIPE_SIZE = 1 << 20


class SourceBroken(Exception):
    """The side bytes are read from failed or ended early (errors of the side they are
    written to stay OSErrors); ``idle``: it sent nothing for its idle timeout."""

    def __init__(self, message: str, idle: bool = False):
        super().__init__(message)
        self.idle = idle


@contextmanager
def client_timeout(environ: dict, seconds: float) -> Iterator[None]:
    """Within the block, a read of the client's socket (gunicorn's body reader) that
    gets nothing for ``seconds`` raises ``TimeoutError``; the socket's own timeout is
    restored after it."""
    sock = environ.get("gunicorn.socket")
    if not isinstance(sock, socket.socket):
        yield
        return
    before = sock.gettimeout()
    sock.settimeout(seconds)
    try:
        yield
    finally:
        try:
            sock.settimeout(before)
        except OSError:  # closed meanwhile
            pass


def forward_body(
    environ: dict, target: socket.socket, timeout: float, idle_timeout: float | None = None
) -> int | None:
    """Send a request body of known length to ``target`` without it entering Python
    (past what gunicorn had read ahead); returns the bytes sent, or None when this
    request cannot be spliced (the caller then reads it block by block). A client that
    sends nothing for ``idle_timeout`` seconds (default ``timeout``) is ``SourceBroken``
    with ``idle=True``."""
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
    try:
        target.sendall(ahead)
        _splice(client, target, length - len(ahead), timeout, idle_timeout)
    except BaseException:
        body.failed = True  # how much of the body is left on the socket is unknown
        raise
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


def _splice(
    source: socket.socket,
    target: socket.socket,
    length: int,
    timeout: float,
    source_timeout: float | None = None,
) -> None:
    """Move ``length`` bytes from ``source`` to ``target`` inside the kernel; ``source``
    may stay silent ``source_timeout`` seconds at a time (default ``timeout``)."""
    read_end, write_end = os.pipe()
    try:
        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        while length > 0:
            try:
                moved = os.splice(source.fileno(), write_end, min(length, PIPE_SIZE))
            except BlockingIOError:
                try:
                    _wait(source, False, source_timeout or timeout)
                except TimeoutError as exc:
                    raise SourceBroken(str(exc), idle=True) from exc
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


class ClosingBody:
    """A response body that runs ``on_close()`` once when the server closes it, iterated
    or not. werkzeug hands a ``direct_passthrough`` body to the server as it is, so the
    callbacks of ``Response.call_on_close`` never run for it (they do for HEAD)."""

    def __init__(self, body, on_close):
        self._body = body
        self._on_close = on_close

    def __iter__(self):
        return iter(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            on_close, self._on_close = self._on_close, None
            if on_close is not None:
                on_close()


def file_body(
    environ: dict, fd: int, offset: int, length: int, block: int, timeout: float, sent=None
) -> Iterator[bytes]:
    """``length`` bytes of the open file ``fd`` from ``offset`` as a WSGI body (a cache
    hit): the first block through the server (it sends the headers with it), the rest
    written to the socket from a mapping of the file (services/common/mapped_send.py).
    The caller closes ``fd`` when the response is closed (``ClosingBody``). ``sent``, a
    one-item list, counts the bytes sent."""
    sent = [0] if sent is None else sent
    first = os.pread(fd, min(block, length), offset)
    yield first
    sent[0] += len(first)
    offset, length = offset + len(first), length - len(first)
    target = _client_socket(environ)
    if target is not None:

        def count(n: int) -> None:
            sent[0] += n

        send_mapped(
            target.fileno(), fd, offset, length, partial(_wait, target, True, timeout), count
        )
        return
    while length > 0:
        chunk = os.pread(fd, min(block, length), offset)
        if not chunk:
            return
        offset, length = offset + len(chunk), length - len(chunk)
        yield chunk
        sent[0] += len(chunk)


def fill_body(
    environ: dict, response, source: socket.socket, length: int, block: int, timeout: float, fill
) -> Iterator[bytes]:
    """Like ``download_body``, writing the bytes into the cache ``fill`` (a
    services.cache.fill.Fill) on their way. Past the first block they are spliced from the
    store's socket to the client's as in ``download_body`` and duplicated (``tee``, no
    copy) into a second pipe, which a thread of its own splices into the cache file: the
    client never waits for the disk. When that writer falls behind (a disk slower than the
    client), the fill is handed to the node's prefetcher instead (``fill.fall_back``).
    The caller finishes the fill once the body is sent (``fill.written == length``); a
    body cut short aborts it."""
    fell_behind = False
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
            fell_behind = not _splice_and_tee(source, target, fill, remaining, timeout)
            return
        while remaining > 0:
            chunk = response.read(min(block, remaining))
            if not chunk:
                return
            fill.write(chunk)
            remaining -= len(chunk)
            yield chunk
    finally:
        if fell_behind:
            fill.fall_back()
        elif fill.written != length:
            fill.abort()


_libc = ctypes.CDLL(None, use_errno=True)
_libc.tee.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_size_t, ctypes.c_uint]
_libc.tee.restype = ctypes.c_ssize_t


def _tee(fd_in: int, fd_out: int, length: int) -> int:
    """tee(2), which the os module lacks: duplicate up to ``length`` bytes of one pipe
    into another without consuming them (non-blocking)."""
    done = _libc.tee(fd_in, fd_out, length, os.SPLICE_F_NONBLOCK)
    if done < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))  # BlockingIOError for EAGAIN
    return done


def _write_into(read_end: int, fill) -> None:
    """The writer thread: what arrives in the pipe goes into the fill's file."""
    try:
        while moved := os.splice(read_end, fill.fd, PIPE_SIZE, offset_dst=fill.written):
            fill.written += moved
    except OSError:
        pass  # the fill comes up short and is given up


def _splice_and_tee(source, target, fill, length: int, timeout: float) -> bool:
    """Move ``length`` bytes from ``source`` to ``target`` inside the kernel while a
    writer thread puts a copy into the fill's file; False if the writer fell behind and
    its copy was given up (the client got every byte all the same)."""
    to_client, to_file = os.pipe(), os.pipe()
    teeing, writer = True, None
    try:
        fcntl.fcntl(to_client[1], fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        fcntl.fcntl(to_file[1], fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        writer = threading.Thread(
            target=_write_into, args=(to_file[0], fill), name="cache-writer", daemon=True
        )
        writer.start()
        while length > 0:
            try:
                moved = os.splice(source.fileno(), to_client[1], min(length, PIPE_SIZE))
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
            if teeing:
                try:
                    teed = _tee(to_client[0], to_file[1], moved)
                except BlockingIOError:
                    teed = 0
                if teed < moved:  # the file's pipe is full: the disk is behind
                    teeing = False
                    os.close(to_file[1])
            length -= moved
            while moved:
                try:
                    moved -= os.splice(to_client[0], target.fileno(), moved)
                except BlockingIOError:
                    _wait(target, True, timeout)
    finally:
        if teeing:
            os.close(to_file[1])  # the writer reads to the end, then stops
        if writer is not None:
            writer.join()
        for fd in (*to_client, to_file[0]):
            os.close(fd)
    return teeing
