"""The http store: read-only access to image data at an http(s) URL (a location added
through the locations API). Follows redirects (at most five), each hop checked by the
URL filter (services/common/url_filter.py) when the store has one, as the service's
does; ranges are asked of the server and emulated when it ignores them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from urllib.parse import urljoin

import requests

from services.common.errors import Forbidden
from services.store.backends.base import DataNotFound, StoredImage, StoreUnavailable

CHUNK = 1 << 20
TIMEOUT = (10, 60)  # connect, read
MAX_REDIRECTS = 5


def _check(resp: requests.Response, location: str) -> None:
    if resp.status_code == 404:
        raise DataNotFound(f"No image data at {location} (HTTP 404).")
    if resp.status_code >= 400:
        raise StoreUnavailable(
            f"The image data at {location} could not be read (HTTP {resp.status_code})."
        )


class HttpStore:
    schemes = ("http", "https")
    writable = False
    local_files = False

    def __init__(self, session: requests.Session | None = None, url_filter=None):
        """``url_filter``: a services.common.url_filter.UrlFilter every URL (redirects
        included) must pass before it is requested."""
        self.session = session or requests.Session()
        self.url_filter = url_filter

    def add(
        self, image_id: str, chunks: Iterable[bytes], size: int | None, upload_id: str
    ) -> StoredImage:
        raise Forbidden("The http store is read-only.")

    def _request(self, method: str, location: str, **kwargs) -> requests.Response:
        url = location
        for _hop in range(MAX_REDIRECTS + 1):
            if self.url_filter is not None:
                self.url_filter.resolve(url)  # UrlRefused (400) for a refused hop
            try:
                resp = self.session.request(
                    method, url, timeout=TIMEOUT, allow_redirects=False, **kwargs
                )
            except requests.RequestException as exc:
                raise StoreUnavailable(
                    f"The image data at {location} could not be reached: {exc.__class__.__name__}."
                ) from None
            if not resp.is_redirect:
                _check(resp, location)
                return resp
            url = urljoin(url, resp.headers["Location"])
            resp.close()
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
        resp = self._request("GET", location, headers=headers, stream=True)
        skip = offset if resp.status_code == 200 else 0  # the server ignored the range
        return self._read(resp, skip, length)

    @staticmethod
    def _read(resp: requests.Response, skip: int, length: int | None) -> Iterator[bytes]:
        remaining = length
        with resp:
            for chunk in resp.iter_content(CHUNK):
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

    def size(self, location: str) -> int:
        resp = self._request("HEAD", location)
        try:
            return int(resp.headers["Content-Length"])
        except (KeyError, ValueError):
            raise StoreUnavailable(
                f"The size of the image data at {location} is unknown (no Content-Length)."
            ) from None

    def local_path(self, location: str):
        raise NotImplementedError("The http store keeps no local files.")

    def delete(self, location: str) -> None:
        """Data at an external URL is not Tessera's to delete."""

    def delete_partial(self, image_id: str, upload_id: str) -> None:
        """Nothing is ever written."""
