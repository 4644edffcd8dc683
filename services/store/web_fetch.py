"""Reading a web-download source: an HTTP(S) GET whose every hop passes the URL filter.

- Each hop's host is resolved and checked by services/common/url_filter.py, and the
  connection goes to the very address that was checked (pinned; the Host header and the
  TLS name stay the URL's host), so a DNS answer cannot change between check and use.
- Redirects are followed here, not by a library, each one filtered like the first URL,
  at most MAX_REDIRECTS of them.
- The body is read straight from the socket into the caller's buffers. With a
  Content-Length, reads are not stopped at that length: the upload pipeline asks for one
  byte more and so sees a body longer than announced (the request says
  ``Connection: close``, so an honest server ends the body by closing).
"""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urljoin

from services.common.errors import BadRequest
from services.common.url_filter import Target, UrlFilter, UrlRefused

MAX_REDIRECTS = 5
TIMEOUT = 60  # seconds a source may stay silent
REDIRECTS = (301, 302, 303, 307, 308)
FILL = 1 << 20  # bytes a read waits for, at most


class SourceError(BadRequest):
    """The source could not be read as an image."""


class _HeldSocket:
    """http.client closes a connection as soon as the response says it will close (it
    "passes the connection to the response"); a green socket closed so is gone under
    the response's file too. Here the socket is held until ``release``."""

    def close(self):
        sock, self.sock = self.sock, None
        if sock is not None:
            self._held = sock

    def release(self):
        self.close()
        sock, self._held = getattr(self, "_held", None), None
        if sock is not None:
            sock.close()


class _PinnedHTTP(_HeldSocket, http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout, blocksize=1 << 20)
        self._address = target.address

    def connect(self):
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(_HeldSocket, http.client.HTTPSConnection):
    def __init__(self, target: Target, timeout: float):
        super().__init__(
            target.host,
            target.port,
            timeout=timeout,
            context=ssl.create_default_context(),
            blocksize=1 << 20,
        )
        self._address = target.address

    def connect(self):
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


@dataclass
class Source:
    url: str  # after redirects
    size: int | None  # Content-Length, when the source sent one
    readinto: Callable[[memoryview], int]
    close: Callable[[], None]


def _host_header(target: Target) -> str:
    host = f"[{target.host}]" if ":" in target.host else target.host
    default = {"http": 80, "https": 443}[target.scheme]
    return host if target.port == default else f"{host}:{target.port}"


def _request(target: Target, timeout: float):
    conn = (_PinnedHTTPS if target.scheme == "https" else _PinnedHTTP)(target, timeout)
    try:
        conn.putrequest("GET", target.path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", _host_header(target))
        conn.putheader("Accept-Encoding", "identity")
        conn.putheader("Connection", "close")
        conn.putheader("User-Agent", "tessera-web-download")
        conn.endheaders()
        return conn, conn.getresponse()
    except (OSError, http.client.HTTPException) as exc:
        conn.release()
        raise SourceError(f"Could not read {target.url}: {exc}") from None


def _guarded(read: Callable[[memoryview], int], url: str) -> Callable[[memoryview], int]:
    def readinto(buffer: memoryview) -> int:
        try:
            return read(buffer) or 0
        except (OSError, http.client.HTTPException) as exc:
            raise SourceError(f"Reading {url} broke off: {exc}") from None

    return readinto


def _filling(readinto1: Callable[[memoryview], int]) -> Callable[[memoryview], int]:
    """Read what the socket has, until at least FILL bytes (or the buffer is full, or
    the body ends): large chunks for the pipeline, and progress from a slow source."""

    def readinto(buffer: memoryview) -> int:
        got, want = 0, min(len(buffer), FILL)
        while got < want:
            count = readinto1(buffer[got:])
            if not count:
                break
            got += count
        return got

    return readinto


def open_source(url: str, url_filter: UrlFilter, timeout: float = TIMEOUT) -> Source:
    """Connect, follow redirects (each hop filtered), and answer the body's reader.
    Raises UrlRefused (a hop the filter refuses) or SourceError."""
    for _hop in range(MAX_REDIRECTS + 1):
        target = url_filter.resolve(url)
        conn, resp = _request(target, timeout)
        if resp.status in REDIRECTS:
            location = resp.getheader("Location")
            conn.release()
            if not location:
                raise SourceError(f"{url} answered {resp.status} without a Location.")
            url = urljoin(url, location)
            continue
        if resp.status != 200:
            conn.release()
            raise SourceError(f"{url} answered HTTP {resp.status} {resp.reason}.")
        if resp.chunked or resp.length is None:
            reader = resp.readinto  # de-chunked, or read to the close
        else:
            reader = _filling(resp.fp.readinto1)  # past the length too: the module's note

        def close(resp=resp, conn=conn):
            resp.close()
            conn.release()

        return Source(url, resp.length, _guarded(reader, url), close)
    raise UrlRefused(f"{url}: more than {MAX_REDIRECTS} redirects.")
