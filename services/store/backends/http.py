"""The http store: read-only access to image data at an http(s) URL (a location added
through the locations API). Follows redirects (at most five), each hop checked by the
URL filter (services/common/url_filter.py) when the store has one, as the service's
does, and requested from the very address the filter checked
(services/store/pinned_http.py), so a DNS answer cannot change between check and use;
ranges are asked of the server and emulated when it ignores them."""

from __future__ import annotations

import http.client
import socket
from collections.abc import Iterable, Iterator
from dataclasses import replace
from urllib.parse import urljoin, urlsplit

from requests.utils import requote_uri

from services.common.errors import Forbidden
from services.common.url_filter import DEFAULT_PORTS, Target
from services.store import pinned_http
from services.store.backends.base import DataNotFound, StoredImage, StoreUnavailable

CHUNK = 1 << 20
TIMEOUT = (10, 60)  # connect, read
MAX_REDIRECTS = 5
USER_AGENT = "tessera-http-store"


def _check(status: int, location: str) -> None:
    if status == 404:
        raise DataNotFound(f"No image data at {location} (HTTP 404).")
    if status >= 400:
        raise StoreUnavailable(f"The image data at {location} could not be read (HTTP {status}).")


def _unreachable(location: str, exc: BaseException) -> StoreUnavailable:
    return StoreUnavailable(
        f"The image data at {location} could not be reached: {exc.__class__.__name__}."
    )


def _unfiltered(url: str) -> Target:
    """A hop's target for a store built without a URL filter (tests): the URL's host
    resolved once, with no address refused, and pinned like a filtered one. Raises
    ValueError, KeyError (not http or https) or OSError (no address)."""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), parts.hostname
    if not host:
        raise ValueError(f"no host in {url}")
    port = parts.port or DEFAULT_PORTS[scheme]
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][4][0]
    return Target(url, scheme, host, port, path, address)


class HttpStore:
    schemes = ("http", "https")
    writable = False
    local_files = False

    def __init__(self, url_filter=None):
        """``url_filter``: a services.common.url_filter.UrlFilter every URL (redirects
        included) must pass before it is requested. Without one (tests), every address
        is allowed, still resolved once per hop and connected to as resolved."""
        self.url_filter = url_filter

    def add(
        self, image_id: str, chunks: Iterable[bytes], size: int | None, upload_id: str
    ) -> StoredImage:
        raise Forbidden("The http store is read-only.")

    def _target(self, url: str, location: str) -> Target:
        if self.url_filter is not None:
            return self.url_filter.resolve(url)  # UrlRefused (400) for a refused hop
        try:
            return _unfiltered(url)
        except (ValueError, KeyError, OSError, UnicodeError) as exc:
            raise _unreachable(location, exc) from None

    def _request(self, method: str, location: str, headers: dict[str, str]):
        """The pinned connection and the response of the last hop (neither 3xx with a
        Location nor an error status); the caller releases the connection."""
        url = location
        headers = {"User-Agent": USER_AGENT, **headers}
        for _hop in range(MAX_REDIRECTS + 1):
            target = self._target(url, location)
            target = replace(target, path=requote_uri(target.path))  # as requests sent it
            try:
                conn, resp = pinned_http.request(
                    target, method, headers, TIMEOUT[1], connect_timeout=TIMEOUT[0]
                )
            except (OSError, http.client.HTTPException) as exc:
                raise _unreachable(location, exc) from None
            redirect = resp.getheader("Location")
            if resp.status not in pinned_http.REDIRECTS or redirect is None:
                try:
                    _check(resp.status, location)
                except Exception:
                    _close(conn, resp)
                    raise
                return conn, resp
            _close(conn, resp)
            url = urljoin(url, redirect)
        raise StoreUnavailable(
            f"The image data at {location}: more than {MAX_REDIRECTS} redirects."
        )

    def get(self, location: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        headers = {}
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            headers["Range"] = f"bytes={offset}-{end}"
        if length == 0:
            return iter(())
        conn, resp = self._request("GET", location, headers)
        skip = offset if resp.status == 200 else 0  # the server ignored the range
        return self._read(conn, resp, location, skip, length)

    @staticmethod
    def _read(
        conn, resp: http.client.HTTPResponse, location: str, skip: int, length: int | None
    ) -> Iterator[bytes]:
        remaining = length
        try:
            while chunk := resp.read(CHUNK):
                if skip:
                    dropped = min(skip, len(chunk))
                    chunk, skip = chunk[dropped:], skip - dropped
                    if not chunk:
                        continue
                if remaining is not None:
                    chunk = chunk[:remaining]
                    remaining -= len(chunk)
                yield chunk
                if remaining == 0:
                    return
            if resp.length:  # http.client ends a body shorter than announced silently
                raise StoreUnavailable(
                    f"The image data at {location} ended {resp.length} bytes early."
                )
        except (OSError, http.client.HTTPException) as exc:
            raise StoreUnavailable(
                f"Reading the image data at {location} broke off: {exc.__class__.__name__}."
            ) from None
        finally:
            _close(conn, resp)

    def size(self, location: str) -> int:
        conn, resp = self._request("HEAD", location, {})
        _close(conn, resp)
        try:
            return int(resp.getheader("Content-Length"))
        except (TypeError, ValueError):
            raise StoreUnavailable(
                f"The size of the image data at {location} is unknown (no Content-Length)."
            ) from None

    def local_path(self, location: str):
        raise NotImplementedError("The http store keeps no local files.")

    def delete(self, location: str) -> None:
        """Data at an external URL is not Tessera's to delete."""

    def delete_partial(self, image_id: str, upload_id: str) -> None:
        """Nothing is ever written."""


def _close(conn, resp: http.client.HTTPResponse) -> None:
    resp.close()
    conn.release()
