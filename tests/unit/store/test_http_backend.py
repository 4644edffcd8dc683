"""The read-only http store against a real local HTTP server (redirects, ranges, every
hop connected to the address the URL filter checked)."""

from __future__ import annotations

import os
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from services.common.errors import Forbidden
from services.common.url_filter import Target, UrlFilter, UrlRefused
from services.store.backends.base import DataNotFound, StoreBackend, StoreUnavailable
from services.store.backends.http import HttpStore
from services.store.pinned_http import host_header

DATA = os.urandom(3 * (1 << 20) + 123)


class Handler(BaseHTTPRequestHandler):
    honour_ranges = True
    hosts: list[str] = []  # the Host header of every request, in order

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self._answer(body=False)

    def do_GET(self):
        self._answer(body=True)

    def _answer(self, body: bool):
        self.hosts.append(self.headers["Host"])
        if self.path == "/short":  # announces more than it sends, then closes
            self.send_response(200)
            self.send_header("Content-Length", str(len(DATA)))
            self.end_headers()
            if body:
                self.wfile.write(DATA[:100])
            return
        if self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/image")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path not in ("/image", "/norange"):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data, status = DATA, 200
        rng = self.headers.get("Range")
        if rng and self.path == "/image":
            first, _, last = rng.removeprefix("bytes=").partition("-")
            end = int(last) if last else len(DATA) - 1
            data, status = DATA[int(first) : end + 1], 206
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)


@pytest.fixture(scope="module")
def base_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def store():
    """A store whose URL filter allows the loopback test server, on any port."""
    return HttpStore(url_filter=UrlFilter(allowed_hosts=["127.0.0.1"], allowed_ports=()))


def test_the_default_filter_refuses_the_test_server(base_url):
    """Without a filter given, the store filters as Glance's defaults do (ports 80 and
    443, no loopback): never unfiltered."""
    with pytest.raises(UrlRefused, match="does not pass filtering"):
        HttpStore().get(f"{base_url}/image")


def test_contract_shape(store):
    assert isinstance(store, StoreBackend)
    assert not store.writable and "https" in store.schemes


def test_get_size_and_redirect(store, base_url):
    assert b"".join(store.get(f"{base_url}/image")) == DATA
    assert b"".join(store.get(f"{base_url}/moved")) == DATA
    assert store.size(f"{base_url}/moved") == len(DATA)


@pytest.mark.parametrize("path", ["/image", "/norange"])
def test_ranges_asked_or_emulated(store, base_url, path):
    url = base_url + path
    assert b"".join(store.get(url, 10, 100)) == DATA[10:110]
    assert b"".join(store.get(url, (1 << 20) + 7)) == DATA[(1 << 20) + 7 :]
    assert b"".join(store.get(url, 5, 0)) == b""


def test_errors(store, base_url):
    with pytest.raises(DataNotFound):
        store.get(f"{base_url}/missing")
    with pytest.raises(StoreUnavailable, match="could not be reached"):
        store.get("http://127.0.0.1:1/image")
    with pytest.raises(StoreUnavailable, match="ended"):  # never a silently short image
        b"".join(store.get(f"{base_url}/short"))
    with pytest.raises(Forbidden):
        store.add("img", iter([b"x"]), 1, "u")
    store.delete(f"{base_url}/image")  # never deletes remote data
    assert b"".join(store.get(f"{base_url}/image", 0, 3)) == DATA[:3]


class ResolvingToLoopback(UrlFilter):
    """A filter whose DNS answers 127.0.0.1 for any name, for a name no resolver answers
    (``.invalid``, RFC 6761): the test server is reached only when the store connects to
    the address the filter gave, never by resolving the name again."""

    def resolve(self, url):
        return replace(self.check(url), address="127.0.0.1")


def test_every_hop_goes_to_the_checked_address(base_url):
    port = int(base_url.rsplit(":", 1)[1])
    store = HttpStore(url_filter=ResolvingToLoopback(allowed_ports=[port]))
    url = f"http://image-source.invalid:{port}"
    Handler.hosts.clear()
    assert b"".join(store.get(f"{url}/moved")) == DATA  # two hops
    assert b"".join(store.get(f"{url}/image", 10, 100)) == DATA[10:110]
    assert b"".join(store.get(f"{url}/norange", (1 << 20) + 7)) == DATA[(1 << 20) + 7 :]
    assert store.size(f"{url}/moved") == len(DATA)  # HEAD, two hops
    assert Handler.hosts == [f"image-source.invalid:{port}"] * 6  # the URL's host, kept


@pytest.mark.parametrize(
    ("host", "port", "header"),
    [
        ("images.example", 80, "images.example"),
        ("images.example", 8080, "images.example:8080"),
        ("::1", 8080, "[::1]:8080"),
        ("пример.рф", 80, "xn--e1afmkfd.xn--p1ai"),  # as DNS was asked for it
    ],
)
def test_host_header(host, port, header):
    target = Target(f"http://{host}/", "http", host, port, "/", "127.0.0.1")
    assert host_header(target) == header
