"""The http store: read-only access to image data at an http(s) URL (a location added
through the locations API). Follows redirects (at most five), each hop checked by the
URL filter (services/common/url_filter.py), as the service's web-download does, and
requested from the very address the filter checked
(services/store/pinned_http.py), so a DNS answer cannot change between check and use;
ranges are asked of the server and emulated when it ignores them."""

from __future__ import annotations

import http.client
from collections.abc import Callable, Iterable, Iterator

from services.common.errors import Forbidden
from services.common.url_filter import UrlFilter
from services.store import pinned_http
from services.store.backends.base import DataNotFound, StoredImage, StoreUnavailable

CHUNK = 1 << 20
TIMEOUT = (10, 60)  # connect, read
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


class HttpStore:
    schemes = ("http", "https")
    writable = False
    local_files = False

    def __init__(self, url_filter: UrlFilter | None = None):
        """``url_filter``: the services.common.url_filter.UrlFilter every URL (redirects
        included) must pass before it is requested (default: Glance's defaults, which
        refuse loopback; the store service passes ``[import_filtering_opts]``'s)."""
        self.url_filter = url_filter or UrlFilter()

    def add(
        self,
        image_id: str,
        chunks: Iterable[bytes],
        size: int | None,
        upload_id: str,
        confirm: Callable[[], object] | None = None,
    ) -> StoredImage:
        raise Forbidden("The http store is read-only.")

    def _request(self, method: str, location: str, headers: dict[str, str]):
        """The pinned connection and the response of the last hop (neither 3xx with a
        Location nor an error status); the caller releases the connection."""
        try:
            _url, conn, resp = pinned_http.follow(
                location,
                self.url_filter.resolve,  # UrlRefused (400) for a refused hop
                method,
                {"User-Agent": USER_AGENT, **headers},
                TIMEOUT[1],
                connect_timeout=TIMEOUT[0],
            )
        except (OSError, http.client.HTTPException) as exc:
            raise _unreachable(location, exc) from None
        except pinned_http.TooManyRedirects as exc:
            raise StoreUnavailable(f"The image data at {location}: {exc}.") from None
        try:
            _check(resp.status, location)
        except Exception:
            _close(conn, resp)
            raise
        return conn, resp

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

    def discard(self, image_id: str, upload_id: str, stored: StoredImage) -> None:
        """Nothing is ever written."""


def _close(conn, resp: http.client.HTTPResponse) -> None:
    resp.close()
    conn.release()
