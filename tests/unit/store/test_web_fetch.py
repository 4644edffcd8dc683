"""Reading a web-download source (services/store/web_fetch.py) from a server on
loopback: redirects followed and filtered hop by hop, at most five, the Host header of
the URL on a pinned connection, and a body read past a lying Content-Length."""

from __future__ import annotations

import http.server
import subprocess
import sys
from pathlib import Path

import pytest

from services.common.errors import StoreUnavailable
from services.common.url_filter import UrlFilter, UrlRefused
from services.store.backends.http import HttpStore
from services.store.pinned_http import MAX_REDIRECTS
from services.store.web_fetch import SourceError, open_source

ROOT = Path(__file__).resolve().parents[3]


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802
        path = self.path
        if path.startswith("/hop/"):
            left = int(path.split("/")[2])
            self.send_response(302)
            self.send_header("Location", f"/hop/{left - 1}" if left else "/host")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path.startswith("/away"):
            self.send_response(301)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.end_headers()
        elif path == "/host":
            body = self.headers["Host"].encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif path == "/long":
            self.send_response(200)
            self.send_header("Content-Length", "10")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"x" * 25)
        else:
            self.send_error(404)


def serve() -> None:
    """The server, in a process of its own (whatever eventlet did to this one's sockets
    and threads), announcing its port on standard output."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(httpd.server_address[1], flush=True)
    httpd.serve_forever()


@pytest.fixture(scope="module")
def server():
    proc = subprocess.Popen(
        [sys.executable, "-c", "from tests.unit.store.test_web_fetch import serve; serve()"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}", port
    finally:
        proc.kill()
        proc.wait()


def read_all(source) -> bytes:
    out, buffer = b"", memoryview(bytearray(1 << 16))
    while count := source.readinto(buffer):
        out += bytes(buffer[:count])
    source.close()
    return out


def allowing(port: int) -> UrlFilter:
    return UrlFilter(allowed_hosts=["127.0.0.1"], allowed_ports=[port])


def test_redirects_are_followed_up_to_five(server):
    url, port = server
    source = open_source(f"{url}/hop/{MAX_REDIRECTS - 1}", allowing(port))
    assert read_all(source) == f"127.0.0.1:{port}".encode()  # the URL's host, pinned
    with pytest.raises(UrlRefused, match="redirects"):
        open_source(f"{url}/hop/{MAX_REDIRECTS}", allowing(port))


def test_every_hop_is_filtered(server):
    url, port = server
    with pytest.raises(UrlRefused, match="169.254.169.254"):
        open_source(f"{url}/away", allowing(port))
    with pytest.raises(UrlRefused, match="loopback"):
        open_source(f"{url}/host", UrlFilter(allowed_ports=[port]))  # the default hosts


def test_the_body_is_read_past_its_content_length(server):
    url, port = server
    source = open_source(f"{url}/long", allowing(port))
    assert source.size == 10
    assert len(read_all(source)) == 25  # the pipeline sees the extra bytes and refuses


def test_an_error_status_is_a_source_error(server):
    url, port = server
    with pytest.raises(SourceError, match="404"):
        open_source(f"{url}/nothing", allowing(port))


def test_the_http_store_filters_every_hop(server):
    """Reads of a location (services/store/backends/http.py) go through the same filter."""
    url, port = server
    store = HttpStore(url_filter=allowing(port))
    assert b"".join(store.get(f"{url}/hop/2")) == f"127.0.0.1:{port}".encode()
    with pytest.raises(UrlRefused, match="169.254.169.254"):
        store.get(f"{url}/away")
    with pytest.raises(StoreUnavailable, match="redirects"):
        store.get(f"{url}/hop/{MAX_REDIRECTS}")
    with pytest.raises(UrlRefused, match="loopback"):
        HttpStore(url_filter=UrlFilter(allowed_ports=[port])).get(f"{url}/host")
