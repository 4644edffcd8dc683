"""The gateway's HTTP front: gunicorn's gthread worker, where a connection gets a thread
only once its request has arrived.

gunicorn's own gthread worker hands every new connection to a thread, which then reads
the request line and headers with a blocking socket: 2 workers x 16 threads were held by
40 clients sending their headers a byte at a time, and every other request waited
(a ``show`` timed out at 30 s). Here the worker's main loop gathers each request's line
and headers, and a small body of declared length (a JSON document: a create, a patch),
from the non-blocking socket as they arrive, and hands the connection to a thread only
when they are all there; a connection that has not sent them within
``client_header_timeout`` seconds gets a 408 and is closed. Hundreds of slow-header
connections cost a socket and a buffer each, never a thread. Kept-alive connections wait
in the same loop (gunicorn's), for ``client_socket_timeout`` seconds.

What still holds a thread is a request that moves image data: an upload (or any large or
chunked body) while it is read, a download while it is sent. Those are served by a second
pool of ``threads`` threads, so however many of them stall, metadata requests keep theirs.
Its client socket has a timeout in the thread (``client_socket_timeout``, Glance's socket
timeout, and for image data the much shorter ``upload_idle_timeout``,
services/api/image_data.py), so a stalled upload holds its thread for at most that long,
and the image goes back to ``queued``.

Why not gevent (measured, this 2-core machine under the other sessions' load, the same
2 workers, one kept-alive client, 150 requests per round, rounds interleaved): gunicorn's
gevent worker answered ``show`` in 8.6-12.8 ms p50 (median of 6-8 rounds) where gthread
took 4.2-4.3 ms, and ``list?limit=20`` 9.5-19.2 ms against 6.6-8.8 ms, with ~0.2-0.5 ms
more gateway CPU per request; a gevent worker also turns the cache fill's writer and
verifier threads into greenlets that block the whole worker. The event loop here costs
the fast path nothing: a request that arrives in one packet (every real client's) is
read once by the main loop and handed to a thread as gunicorn's worker would.

This subclasses gunicorn 27's ``ThreadWorker`` (``accept``, ``on_client_socket_readable``,
``murder_pending``, ``enqueue_req``, ``get_thread_pool``, ``handle_request``,
``TConn.parser``/``data_ready``): a tripwire
test (tests/unit/api/test_front.py) fails when the pinned gunicorn changes under it.
"""

from __future__ import annotations

import errno
import gc
import re
import selectors
import time
from collections import deque
from concurrent import futures
from functools import partial

from gunicorn import http
from gunicorn.http.body import ChunkedReader, LengthReader
from gunicorn.http.parser import _DRAIN_MAX_BYTES
from gunicorn.http2 import negotiation
from gunicorn.workers.gthread import TConn, ThreadWorker

#: the most request-line and header bytes gathered before a thread is given; a larger
#: header block gets 431 (gunicorn's own limits are 8190 per line and 16 KiB a field)
MAX_HEADER_BYTES = 256 << 10
#: a body of at most this declared length is gathered with the headers (JSON documents)
MAX_GATHERED_BODY = 64 << 10
HEADER_END = re.compile(rb"\r?\n\r?\n")
CONTENT_LENGTH = re.compile(rb"\ncontent-length[ \t]*:[ \t]*(\d{1,12})[ \t]*\r?\n", re.I)
EXPECT_OR_CHUNKED = re.compile(rb"\n(expect|transfer-encoding)[ \t]*:", re.I)
#: downloads: v2's image file, v1's GET of an image (not its detail list)
DOWNLOAD = re.compile(
    rb"GET /v2/images/[^/?# ]+/file[?# ]|GET /v1/images/(?!detail[?# ])[^/?# ]+[?# ]"
)

REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
HEADERS_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n"
    b"Content-Length: 0\r\n\r\n"
)

#: set in the master by ``configure`` before the workers fork (gunicorn has no settings
#: of these names)
_TIMEOUTS = {"header": 10.0, "socket": 900.0}


def configure(header_timeout: float, socket_timeout: float) -> None:
    _TIMEOUTS["header"] = header_timeout
    _TIMEOUTS["socket"] = socket_timeout


def moves_data(data: bytes | bytearray) -> bool:
    """Whether a gathered request (``request_complete``) is a download, or has a body
    left to read in the thread (an upload, any large, chunked or ``Expect`` body)."""
    if DOWNLOAD.match(data.lstrip()):
        return True
    end = HEADER_END.search(data)
    head = data[: end.end()]
    if EXPECT_OR_CHUNKED.search(head):
        return True
    length = CONTENT_LENGTH.search(head)
    return length is not None and len(data) - end.end() < int(length.group(1))


def request_complete(data: bytes | bytearray) -> bool:
    """Whether ``data`` holds a whole request line and headers, and the body too when it
    is small and of declared length (without ``Expect``: such a client waits for a 100
    before it sends its body; chunked bodies are read in the thread)."""
    end = HEADER_END.search(data)
    if end is None:
        return False
    head = data[: end.end()]
    if EXPECT_OR_CHUNKED.search(head):
        return True
    length = CONTENT_LENGTH.search(head)
    if length is None or int(length.group(1)) > MAX_GATHERED_BODY:
        return True
    return len(data) - end.end() >= int(length.group(1))


def body_left_unread(environ: dict) -> bool:
    """Whether this request's connection cannot serve another request once answered:
    the application left more of the body unread than gunicorn drains after the answer
    (an upload refused before or while it was read: a size cap, a quota, a store that
    gave up), or reading it failed midway (a splice cut short). gunicorn closes such a
    connection anyway; the answer must then say ``Connection: close``, or a client
    sends its next request on a connection about to close and sees it drop."""
    body = environ.get("wsgi.input")
    if getattr(body, "failed", False) is True:
        return True
    reader = getattr(body, "reader", None)
    if isinstance(reader, LengthReader):
        return reader.length > _DRAIN_MAX_BYTES
    return isinstance(reader, ChunkedReader) and reader.parser is not None


def closing_when_body_unread(app):
    """``app`` whose answer closes the connection when ``body_left_unread`` (gunicorn
    drops a ``Connection`` header set by the application; its response object's
    ``force_close`` is what decides)."""

    def wrapped(environ, start_response):
        def start(status, headers, exc_info=None):
            response = getattr(start_response, "__self__", None)  # gunicorn's Response
            if body_left_unread(environ) and hasattr(response, "force_close"):
                response.force_close()
            return start_response(status, headers, exc_info)

        return app(environ, start)

    return wrapped


class GatewayWorker(ThreadWorker):
    """gunicorn's threaded worker; each request is gathered by the main loop (see the
    module's docstring) before a thread serves it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.gathering: deque[TConn] = deque()  # ordered by deadline (one timeout for all)
        self.data_pool: futures.ThreadPoolExecutor | None = None

    def get_thread_pool(self):
        """The metadata requests' pool (gunicorn's); the image data pool beside it."""
        self.data_pool = futures.ThreadPoolExecutor(
            max_workers=self.cfg.threads, thread_name_prefix="image-data"
        )
        return super().get_thread_pool()

    def enqueue_req(self, conn):
        if not getattr(conn, "moves_data", False):
            super().enqueue_req(conn)
            return
        done = self.data_pool.submit(self.handle, conn)
        done.add_done_callback(lambda fut: self.method_queue.defer(self.finish_request, conn, fut))

    def run(self):
        try:
            super().run()
        finally:
            self.data_pool.shutdown(wait=False)

    def load_wsgi(self):
        super().load_wsgi()
        self.wsgi = closing_when_body_unread(self.wsgi)
        gc.freeze()  # the app lives as long as the worker: as services/launch.py does

    def handle_quit(self, sig, frame):
        self.data_pool.shutdown(wait=False)
        super().handle_quit(sig, frame)

    # --- connections in, requests gathered

    def accept(self, listener):
        try:
            sock, addr = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = TConn(self.cfg, sock, addr, listener.getsockname())  # non-blocking
        if self.cfg.is_ssl or negotiation.prior_knowledge_allowed(self.cfg, addr):
            self.enqueue_req(conn)  # TLS or HTTP/2: gunicorn's own path
            return
        self._gather(conn)

    def on_client_socket_readable(self, conn, client):
        """A kept-alive connection sends its next request."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        if conn.is_http2:
            self.enqueue_req(conn)
            return
        self._gather(conn)

    def _gather(self, conn: TConn) -> None:
        conn.gathered = bytearray()
        conn.timeout = time.monotonic() + (_TIMEOUTS["header"] or 86400)
        conn.registered = False
        self.gathering.append(conn)
        self._read_request(conn, conn.sock)  # most requests are there already

    def _read_request(self, conn: TConn, sock) -> None:
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            data = None
        except OSError:
            data = b""
        if data == b"":  # closed before a whole request came
            self._drop(conn)
            return
        if data:
            conn.gathered += data
            if len(conn.gathered) > MAX_HEADER_BYTES + MAX_GATHERED_BODY:
                self._drop(conn, HEADERS_TOO_LARGE)
                return
            if request_complete(conn.gathered):
                self._hand_over(conn)
                return
        if not conn.registered:
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._read_request, conn))
            conn.registered = True

    def _hand_over(self, conn: TConn) -> None:
        self._forget(conn)
        if conn.parser is None:
            conn.parser = http.get_parser(self.cfg, conn.sock, conn.client)
        conn.parser.unreader.unread(bytes(conn.gathered))
        conn.moves_data = moves_data(conn.gathered)
        conn.gathered = None
        conn.data_ready = True
        self.enqueue_req(conn)

    def _forget(self, conn: TConn) -> None:
        if conn.registered:
            self.poller.unregister(conn.sock)
            conn.registered = False
        self.gathering.remove(conn)

    def _drop(self, conn: TConn, answer: bytes = b"") -> None:
        self._forget(conn)
        if answer:
            try:
                conn.sock.send(answer)
            except OSError:
                pass
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self):
        """gunicorn's (connections deferred without data), and the requests that did not
        arrive within the header timeout: 408 and closed."""
        super().murder_pending()
        now = time.monotonic()
        while self.gathering and self.gathering[0].timeout <= now:
            self._drop(self.gathering[0], REQUEST_TIMEOUT)

    # --- the request in its thread

    def handle_request(self, req, conn):
        # a client silent this long while its body is read or its answer written fails
        # the request (uploads use the shorter upload_idle_timeout)
        conn.sock.settimeout(_TIMEOUTS["socket"] or None)
        return super().handle_request(req, conn)
