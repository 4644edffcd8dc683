"""The store replica's data port: image bytes travel over plain HTTP between the
gateway and the replica that answered the RPC, never through RabbitMQ.

Built on nameko's web server, so each request runs as a nameko worker with the
service's dependencies. Two changes to it:
- chunked request bodies: eventlet's server de-chunks them, but werkzeug only reads a
  body without Content-Length when ``wsgi.input_terminated`` is set, so it is set here;
- errors answer as JSON naming the typed error, with the status the one table in
  services/common/errors.py gives it (503 for StoreUnavailable, 413 for a cap or quota,
  404, 409, 410 ...); the gateway turns the name back into the same error, as it does
  for RPC replies.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable
from functools import partial

from eventlet.hubs import trampoline
from eventlet.wsgi import ChunkReadError
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import WebServer, WsgiApp
from werkzeug.wrappers import Response

from services.common.errors import BadRequest, TesseraError, status_for
from services.common.mapped_send import FileEnded, send_mapped

log = logging.getLogger(__name__)


class _TerminatedInputApp(WsgiApp):
    def __call__(self, environ, start_response):
        environ["wsgi.input_terminated"] = True
        return super().__call__(environ, start_response)


class DataServer(WebServer):
    @property
    def bind_addr(self):
        conf = self.container.config["TESSERA_CONF"]
        return conf.store.data_bind_host, conf.store.data_bind_port

    def get_wsgi_app(self):
        return _TerminatedInputApp(self)

    def context_data_from_headers(self, request):
        request_id = request.headers.get("X-Openstack-Request-Id")
        return {"request_id": request_id} if request_id else {}

    @property
    def base_url(self) -> str:
        conf = self.container.config["TESSERA_CONF"]
        host = conf.store.data_advertise_host or conf.store.data_bind_host
        if host in ("0.0.0.0", "::"):  # listening everywhere: other hosts know us by name
            host = socket.gethostname()
        return f"http://{host}:{self._sock.getsockname()[1]}"


def error_response(exc: Exception, status: int) -> Response:
    body = {"exc_type": type(exc).__name__, "value": str(exc)}
    return Response(json.dumps(body), status=status, mimetype="application/json")


class DataHandler(HttpRequestHandler):
    server = DataServer()

    def __init__(self, method, url, **kwargs):
        kwargs.setdefault("expected_exceptions", (TesseraError,))
        super().__init__(method, url, **kwargs)

    def response_from_exception(self, exc):
        if isinstance(exc, TesseraError):
            return error_response(exc, status_for(exc))
        log.error("data port request failed: %r", exc)
        return error_response(exc, 500)


data_http = DataHandler.decorator


def body_readinto(environ: dict) -> Callable[[memoryview], int]:
    """``readinto`` for a request body: fills the caller's buffer straight from the
    socket (no allocation and no copy per chunk) and returns how many bytes it put
    there, 0 at the end of the body. A chunked body is de-chunked by eventlet's reader
    and copied in."""
    body = environ["eventlet.input"]
    if body.chunked_input or body.content_length is None:

        def copy_into(buffer: memoryview) -> int:
            data = body.read(len(buffer))
            buffer[: len(data)] = data
            return len(data)

        return _typed_stream_errors(copy_into)
    body.read(0)  # answers "Expect: 100-continue" if the sender asked for it

    def readinto(buffer: memoryview) -> int:
        want = min(len(buffer), body.content_length - body.position)
        if want <= 0:
            return 0
        got = body.rfile.readinto(buffer[:want]) or 0
        body.position += got  # eventlet's bookkeeping: what is left to discard
        return got

    return _typed_stream_errors(readinto)


def _typed_stream_errors(read: Callable[[memoryview], int]) -> Callable[[memoryview], int]:
    """A sender that goes away mid-body (a reset socket, a broken chunk) is the client's
    400, not a crash of the data port with a traceback."""

    def guarded(buffer: memoryview) -> int:
        try:
            return read(buffer)
        except (OSError, ChunkReadError) as exc:
            raise BadRequest(f"The upload stream broke off: {exc}") from None

    return guarded


def file_body(environ: dict, path, offset: int, length: int, on_sent=None):
    """A response body written to the client's socket straight from a mapping of the file
    (services/common/mapped_send.py), after eventlet's server has sent the headers with
    the first few bytes. Falls back to reading when the connection is not a plain socket.
    ``on_sent(n)`` hears of the bytes sent so (those never pass through a yield)."""
    sock = getattr(environ.get("eventlet.input"), "_sock", None)
    fd = getattr(sock, "fd", None)
    with open(path, "rb", buffering=0) as handle:
        handle.seek(offset)
        first = handle.read(min(length, 1 << 16))
        yield first  # eventlet writes the status line and headers with it
        offset, length = offset + len(first), length - len(first)
        if fd is None:
            while length > 0:
                chunk = handle.read(min(length, 4 << 20))
                if not chunk:
                    return
                length -= len(chunk)
                yield chunk
            return
        try:
            wait = partial(trampoline, fd, write=True)
            send_mapped(fd.fileno(), handle.fileno(), offset, length, wait, on_sent)
        except FileEnded:  # the client sees a short body
            log.warning("download of %s: the file is shorter than its image", path)
