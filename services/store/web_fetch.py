"""Reading a web-download source: an HTTP(S) GET whose every hop passes the URL filter.

- Each hop's host is resolved and checked by services/common/url_filter.py, and the
  connection goes to the very address that was checked (pinned, by
  services/store/pinned_http.py; the Host header and the TLS name stay the URL's host),
  so a DNS answer cannot change between check and use.
- Redirects are followed by pinned_http.follow, not by a library, each one filtered like
  the first URL, at most pinned_http.MAX_REDIRECTS of them.
- The body is read straight from the socket into the caller's buffers. With a
  Content-Length, reads are not stopped at that length: the upload pipeline asks for one
  byte more and so sees a body longer than announced (the request says
  ``Connection: close``, so an honest server ends the body by closing).
"""

from __future__ import annotations

import http.client
from collections.abc import Callable
from dataclasses import dataclass

from services.common.errors import BadRequest
from services.common.url_filter import UrlFilter, UrlRefused
from services.store import pinned_http

TIMEOUT = 60  # seconds a source may stay silent
FILL = 1 << 20  # bytes a read waits for, at most


class SourceError(BadRequest):
    """The source could not be read as an image."""


@dataclass
class Source:
    url: str  # after redirects
    size: int | None  # Content-Length, when the source sent one
    readinto: Callable[[memoryview], int]
    close: Callable[[], None]


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
    try:
        url, conn, resp = pinned_http.follow(
            url, url_filter.resolve, "GET", {"User-Agent": "tessera-web-download"}, timeout
        )
    except (OSError, http.client.HTTPException) as exc:
        raise SourceError(f"Could not read {url}: {exc}") from None
    except pinned_http.TooManyRedirects as exc:
        raise UrlRefused(f"{url}: {exc}.") from None
    if resp.status != 200:
        resp.close()
        conn.release()
        if resp.status in pinned_http.REDIRECTS:
            raise SourceError(f"{url} answered {resp.status} without a Location.")
        raise SourceError(f"{url} answered HTTP {resp.status} {resp.reason}.")
    if resp.chunked or resp.length is None:
        reader = resp.readinto  # de-chunked, or read to the close
    else:
        reader = _filling(resp.fp.readinto1)  # past the length too: the module's note

    def close():
        resp.close()
        conn.release()

    return Source(url, resp.length, _guarded(reader, url), close)
