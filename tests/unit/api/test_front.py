"""The gateway's front (services/api/front.py): when a gathered request is complete, and
a tripwire on the parts of gunicorn's threaded worker it builds on."""

from __future__ import annotations

import inspect

import pytest
from gunicorn.http.body import Body, ChunkedReader, LengthReader
from gunicorn.http.wsgi import Response
from gunicorn.workers import gthread

from services.api.front import (
    MAX_GATHERED_BODY,
    GatewayWorker,
    body_left_unread,
    moves_data,
    request_complete,
)

GET = b"GET /v2/images HTTP/1.1\r\nHost: x\r\n"


@pytest.mark.parametrize(
    ("data", "complete"),
    [
        (b"", False),
        (GET, False),
        (GET + b"\r\n", True),
        (b"GET / HTTP/1.1\nHost: x\n\n", True),  # bare newlines, as gunicorn reads them
        (b"POST /v2/images HTTP/1.1\r\nContent-Length: 5\r\n\r\n{}", False),
        (b'POST /v2/images HTTP/1.1\r\nContent-Length: 5\r\n\r\n{"a"}', True),
        (b'POST /v2/images HTTP/1.1\r\ncontent-length:5\r\n\r\n{"a"}', True),
        # a large body, a chunked one or one behind Expect is read in the thread
        (f"PUT /f HTTP/1.1\r\nContent-Length: {MAX_GATHERED_BODY + 1}\r\n\r\n".encode(), True),
        (b"POST /v2/images HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", True),
        (b"POST /v2/images HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n", True),
    ],
)
def test_request_complete(data, complete):
    assert request_complete(data) is complete


@pytest.mark.parametrize(
    ("data", "image_data"),
    [
        (GET + b"\r\n", False),
        (b"GET /v2/images/abc HTTP/1.1\r\n\r\n", False),  # a show
        (b"GET /v2/images/abc/file HTTP/1.1\r\n\r\n", True),
        (b"GET /v2/images/abc/file?x HTTP/1.1\r\n\r\n", True),
        (b"HEAD /v1/images/abc HTTP/1.1\r\n\r\n", False),
        (b"GET /v1/images/abc HTTP/1.1\r\n\r\n", True),  # a v1 download
        (b"GET /v1/images/detail?limit=2 HTTP/1.1\r\n\r\n", False),
        (b"POST /v2/images HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", False),
        (b"PUT /v2/images/abc/file HTTP/1.1\r\nContent-Length: 0\r\n\r\n", False),
        (b"PUT /v2/images/abc/file HTTP/1.1\r\nContent-Length: 9\r\n\r\n", True),
        (b"PUT /v2/images/a/stage HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", True),
    ],
)
def test_moves_data(data, image_data):
    """Downloads and bodies left to read go to the image data pool."""
    assert moves_data(data) is image_data


def _body(reader):
    body = Body(reader)
    return {"wsgi.input": body}, body


def test_body_left_unread():
    """An answer closes its connection when more of the body is left than gunicorn
    drains after it, or when reading the body failed midway."""
    environ, _ = _body(LengthReader(None, 64 << 10))
    assert not body_left_unread(environ)  # gunicorn drains this much
    environ, body = _body(LengthReader(None, 8 << 20))
    assert body_left_unread(environ)
    body.reader.length = 0
    assert not body_left_unread(environ)
    body.failed = True  # e.g. a splice cut short: where the next request starts is unknown
    assert body_left_unread(environ)
    environ, body = _body(ChunkedReader(None, None))
    assert body_left_unread(environ)  # not read to its last chunk
    body.reader.parser = None
    assert not body_left_unread(environ)
    assert not body_left_unread({})


def test_gunicorn_threaded_worker_still_has_what_the_front_builds_on():
    """GatewayWorker overrides and calls these; a gunicorn upgrade that renames or
    reshapes them must fail here, not in production."""
    worker = gthread.ThreadWorker
    for name in (
        "accept",
        "on_client_socket_readable",
        "murder_pending",
        "enqueue_req",
        "finish_request",
        "handle_quit",
        "load_wsgi",
    ):
        assert callable(getattr(worker, name, None)), name
    assert callable(Response.force_close)  # the answer's "Connection: close"
    assert list(inspect.signature(worker.handle_request).parameters) == ["self", "req", "conn"]
    assert list(inspect.signature(worker.on_client_socket_readable).parameters) == [
        "self",
        "conn",
        "client",
    ]
    conn_init = inspect.getsource(gthread.TConn.__init__)
    for attribute in ("self.parser", "self.data_ready", "self.timeout", "self.is_http2"):
        assert attribute in conn_init, attribute
    # handle() skips its wait for data when data_ready is set, and init() keeps a parser
    # it is given
    assert "conn.data_ready" in inspect.getsource(worker.handle)
    assert "if self.parser is None" in inspect.getsource(gthread.TConn.init)
    assert "self.tpool = self.get_thread_pool()" in inspect.getsource(worker.init_process)
    assert "self.method_queue.defer(self.finish_request" in inspect.getsource(worker.enqueue_req)
    run = inspect.getsource(worker.run)
    assert "self.murder_pending()" in run
    assert issubclass(GatewayWorker, worker)
