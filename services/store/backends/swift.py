"""The Swift store: one object per image in ``swift_store_container``, as glance_store's
single-tenant Swift driver keeps them.

- Images up to ``large_object_size`` are one streamed PUT. Larger ones, and those of
  unknown size, are a Static Large Object: segments ``<image_id>-<upload_id>-00001`` ...,
  each checked against the MD5 of the bytes sent, then the manifest ``<image_id>``.
  A failed ``add`` removes every segment it wrote and any manifest; ``delete_partial``
  finds what a dead writer left by the ``<image_id>-<upload_id>-`` prefix and the
  manifest's ``X-Object-Meta-Upload-Id``. ``confirm`` is asked before the manifest is
  written; a one-PUT object takes its name as its PUT ends, so an upload given up while
  it streamed can still replace it (``discard`` removes only an object it wrote).
- Reads resume where they broke off (a Range request from the next byte), up to
  ``retry_get_count`` times, and only from the same object (its ETag).
- Locations are ``swift+http(s)://<container>/<image_id>``: no credentials and no auth
  host; the store holds those. Glance's own Swift locations are read too (their container
  and object; credentials in them are ignored).
- python-swiftclient's ``Connection`` authenticates, and again when a token expires. A
  streamed body cannot be sent twice, so every streamed PUT is preceded by a HEAD of the
  container: a stale token is renewed there, before any byte is consumed.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from urllib.parse import quote, unquote, urlsplit

import requests
import urllib3
from swiftclient.client import ClientException, Connection

from services.store.backends.base import (
    DataNotFound,
    StorageFull,
    StoredImage,
    StoreUnavailable,
)
from services.store.backends.swift_config import BadSwiftConfig

LOG = logging.getLogger(__name__)

MiB = 1 << 20
READ_CHUNK = MiB
#: Swift's default ``max_manifest_segments`` and ``max_file_size`` (5 GiB).
MAX_SEGMENTS = 1000
MAX_SEGMENT_SIZE = 5 << 30
UPLOAD_ID_HEADER = "X-Object-Meta-Upload-Id"
CONTENT_TYPE = "application/octet-stream"

#: What a broken connection or an HTTP failure looks like from swiftclient and below.
TRANSPORT_ERRORS = (
    ClientException,
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    OSError,
)


def _typed_error(exc: BaseException, what: str) -> Exception | None:
    """The contract's error for a swiftclient/transport failure; None for anything else."""
    if isinstance(exc, ClientException):
        status = exc.http_status
        if status == 404:
            return DataNotFound(f"The image data was not found in Swift ({what}).")
        if status in (413, 507):
            return StorageFull(
                f"Swift has no space left to {what}: {status} {exc.http_reason or ''}".strip()
            )
        if status in (401, 403):
            return StoreUnavailable(
                f"Swift refused the store's credentials ({what}): "
                f"{status} {exc.http_reason or ''}".strip()
            )
        if status is None:
            return StoreUnavailable(f"Swift failed to {what}: {exc.msg}")
        return StoreUnavailable(f"Swift failed to {what}: {status} {exc.http_reason or ''}".strip())
    if isinstance(exc, TRANSPORT_ERRORS):
        return StoreUnavailable(f"Swift cannot be reached to {what}: {type(exc).__name__}: {exc}")
    return None


@contextmanager
def _errors(what: str):
    try:
        yield
    except TRANSPORT_ERRORS as exc:
        raise _typed_error(exc, what) from exc


def _md5():
    return hashlib.md5(usedforsecurity=False)


# ------------------------------------------------------------------- the byte source


class _Source:
    """The caller's chunks, handed out in bodies of at most ``limit`` bytes. An error
    raised by the caller's iterator is remembered, so that it leaves ``add`` unchanged
    even when the HTTP library wrapped it on the way."""

    def __init__(self, chunks: Iterable[bytes]):
        self._chunks = iter(chunks)
        self._pending = b""
        self.error: BaseException | None = None

    def _next(self) -> bytes | None:
        if self._pending:
            chunk, self._pending = self._pending, b""
            return chunk
        while True:
            try:
                chunk = next(self._chunks)
            except StopIteration:
                return None
            except BaseException as exc:
                self.error = exc
                raise
            if chunk:
                return bytes(chunk) if not isinstance(chunk, bytes) else chunk

    def at_end(self) -> bool:
        chunk = self._next()
        if chunk is None:
            return True
        self._pending = chunk
        return False

    def body(self, limit: int | None) -> _Body:
        return _Body(self, limit)


class _Body:
    """One PUT's body: iterates the source up to ``limit`` bytes, counting and hashing."""

    def __init__(self, source: _Source, limit: int | None):
        self._source = source
        self._left = limit
        self.size = 0
        self.md5 = _md5()

    def __iter__(self) -> Iterator[bytes]:
        while self._left is None or self._left > 0:
            chunk = self._source._next()
            if chunk is None:
                return
            if self._left is not None:
                if len(chunk) > self._left:
                    self._source._pending = chunk[self._left :]
                    chunk = chunk[: self._left]
                self._left -= len(chunk)
            self.size += len(chunk)
            self.md5.update(chunk)
            yield chunk


# ----------------------------------------------------------------------- the store


class SwiftStore:
    schemes = ("swift", "swift+http", "swift+https", "swift+config")
    writable = True
    local_files = False

    def __init__(
        self,
        auth_address: str,
        user: str,
        key: str,
        auth_version: str = "3",
        container: str = "glance",
        create_container_on_put: bool = False,
        large_object_size: int | None = 5120 * MiB,
        large_object_chunk_size: int = 200 * MiB,
        region: str | None = None,
        endpoint_type: str = "publicURL",
        service_type: str = "object-store",
        retry_get_count: int = 0,
        user_domain_id: str | None = None,
        user_domain_name: str | None = None,
        project_domain_id: str | None = None,
        project_domain_name: str | None = None,
        insecure: bool = False,
        cacert: str | None = None,
        connection_retries: int = 5,
        timeout: float = 60.0,
        pool_size: int = 4,
    ):
        """``large_object_size`` None: never segment (one PUT, up to Swift's 5 GiB)."""
        if "://" not in auth_address:
            auth_address = "https://" + auth_address  # as glance_store assumes
        self.auth_address = auth_address
        self.auth_version = str(auth_version).split(".")[0]
        if self.auth_version not in ("1", "2", "3"):
            raise BadSwiftConfig(f"auth_version must be 1, 2 or 3, not {auth_version!r}")
        self.container = container
        self.create_container_on_put = create_container_on_put
        self.large_object_size = large_object_size
        self.large_object_chunk_size = max(1, large_object_chunk_size)
        self.retry_get_count = retry_get_count
        self.scheme = "swift+http" if auth_address.startswith("http://") else "swift+https"
        self._user, self._key = user, key
        self._connection_args = {
            "authurl": auth_address,
            "user": user,
            "key": key,
            "auth_version": self.auth_version,
            "retries": connection_retries,
            "timeout": timeout,
            "insecure": insecure,
            "cacert": cacert,
        }
        if self.auth_version != "1":  # Keystone: catalog options, Glance's 'project:user'
            domains = {
                "user_domain_id": user_domain_id,
                "user_domain_name": user_domain_name,
                "project_domain_id": project_domain_id,
                "project_domain_name": project_domain_name,
                "region_name": region,
            }
            self._connection_args["os_options"] = {
                "endpoint_type": endpoint_type,
                "service_type": service_type,
                **{k: v for k, v in domains.items() if v},
            }
            project, sep, name = user.partition(":")
            if sep:
                self._connection_args.update(user=name, tenant_name=project)
        self._pool: list[Connection] = []
        self._pool_size = pool_size
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never the key
        return (
            f"SwiftStore({self.auth_address!r}, user={self._user!r}, container={self.container!r})"
        )

    # -- connections
    def _new_connection(self) -> Connection:
        return Connection(**self._connection_args)

    def _take(self) -> Connection:
        with self._lock:
            if self._pool:
                return self._pool.pop()
        return self._new_connection()

    def _give_back(self, conn: Connection) -> None:
        with self._lock:
            if len(self._pool) < self._pool_size:
                self._pool.append(conn)
                return
        conn.close()

    @contextmanager
    def _connection(self):
        """A connection for one operation; one that saw an error is not reused."""
        conn = self._take()
        try:
            yield conn
        except BaseException:
            conn.close()
            raise
        self._give_back(conn)

    # -- locations
    def _location(self, image_id: str) -> str:
        return f"{self.scheme}://{quote(self.container, safe='')}/{quote(image_id, safe='')}"

    def _parse(self, location: str) -> tuple[str, str]:
        """(container, object) of one of our locations, or of a Glance Swift location
        (``swift+https://user:key@auth/v3/container/obj``, ``swift+config://ref@/c/o``)."""
        parts = urlsplit(location)
        path = [unquote(p) for p in parts.path.split("/") if p]
        if parts.scheme in self.schemes:
            if "@" not in parts.netloc and len(path) == 1 and parts.netloc:
                return unquote(parts.netloc), path[0]
            if len(path) >= 2:
                return path[-2], path[-1]
        raise DataNotFound(f"{location} is not a location of the Swift store.")

    def holds(self, location: str) -> bool:
        """Whether ``location`` names an object of this store's container (several
        Swift stores of enabled_backends are told apart by it)."""
        try:
            return self._parse(location)[0] == self.container
        except DataNotFound:
            return False

    # -- add
    def add(
        self,
        image_id: str,
        chunks: Iterable[bytes],
        size: int | None,
        upload_id: str,
        confirm: Callable[[], object] | None = None,
    ) -> StoredImage:
        source = _Source(chunks)
        written: list[str] = []  # segments that may exist, to remove on failure
        writing = False
        try:
            with self._connection() as conn:
                self._ensure_container(conn)
                writing = True
                if self._segmented(size) and not source.at_end():
                    total = self._put_large(
                        conn, image_id, upload_id, source, size, written, confirm
                    )
                else:
                    total = self._put_one(conn, image_id, upload_id, source)
        except BaseException as exc:
            if writing:
                self._remove_after_failure(image_id, upload_id, written)
            if source.error is exc:
                raise
            if source.error is not None:  # wrapped by the HTTP library on its way out
                raise source.error from None
            typed = _typed_error(exc, "store the image")
            if typed is None:
                raise
            if isinstance(typed, DataNotFound):  # the container went away meanwhile
                typed = StoreUnavailable(
                    f"The container {self.container} disappeared while the image was stored."
                )
            raise typed from exc
        return StoredImage(location=self._location(image_id), size=total)

    def _segmented(self, size: int | None) -> bool:
        if self.large_object_size is None:
            return False
        return size is None or size > self.large_object_size

    def _ensure_container(self, conn: Connection) -> None:
        """HEAD the container (which also renews an expired token before a body is
        streamed) and create it when missing, if so configured."""
        try:
            conn.head_container(self.container)
        except ClientException as exc:
            if exc.http_status != 404:
                raise
            if not self.create_container_on_put:
                raise StoreUnavailable(
                    f"The container {self.container} does not exist in Swift. Create it "
                    "or set swift_store_create_container_on_put."
                ) from None
            conn.put_container(self.container)

    def _stream_put(self, conn: Connection, name: str, body: _Body, upload_id: str) -> str:
        """PUT a streamed body once: swiftclient cannot resend it, so no retries here."""
        retries, conn.retries = conn.retries, 0
        try:
            etag = conn.put_object(
                self.container,
                name,
                contents=body,
                content_type=CONTENT_TYPE,
                headers={UPLOAD_ID_HEADER: upload_id},
            )
        finally:
            conn.retries = retries
        if (etag or "").strip('"') != body.md5.hexdigest():
            raise StoreUnavailable(
                f"Swift stored {name} with ETag {etag!r}, but the bytes "
                f"sent have MD5 {body.md5.hexdigest()}."
            )
        return body.md5.hexdigest()

    def _put_one(self, conn: Connection, image_id: str, upload_id: str, source: _Source) -> int:
        body = source.body(None)
        self._stream_put(conn, image_id, body, upload_id)
        return body.size

    def _segment_size(self, index: int, size: int | None) -> int:
        base = self.large_object_chunk_size
        if size is not None:  # as many segments as Swift allows in one manifest
            base = max(base, -(-size // MAX_SEGMENTS))
        else:  # unknown size: segments grow, 1000 of them hold terabytes
            base <<= index // 100
        return min(base, MAX_SEGMENT_SIZE)

    def _put_large(
        self,
        conn: Connection,
        image_id: str,
        upload_id: str,
        source: _Source,
        size: int | None,
        written: list[str],
        confirm: Callable[[], object] | None,
    ) -> int:
        segments, total = [], 0
        while not source.at_end():
            index = len(segments)
            if index == MAX_SEGMENTS:
                raise StorageFull(
                    f"The image is too large for one Swift large object ({MAX_SEGMENTS} segments)."
                )
            if index:  # renews the token if it expired while the last segment went up
                conn.head_container(self.container)
            name = f"{image_id}-{upload_id}-{index + 1:05d}"
            written.append(name)
            body = source.body(self._segment_size(index, size))
            etag = self._stream_put(conn, name, body, upload_id)
            segments.append(
                {"path": f"/{self.container}/{name}", "etag": etag, "size_bytes": body.size}
            )
            total += body.size
        if confirm is not None:
            confirm()
        etag = conn.put_object(
            self.container,
            image_id,
            contents=json.dumps(segments),
            content_type=CONTENT_TYPE,
            query_string="multipart-manifest=put",
            headers={UPLOAD_ID_HEADER: upload_id},
        )
        expected = _md5()
        for segment in segments:
            expected.update(segment["etag"].encode())
        if (etag or "").strip('"') != expected.hexdigest():
            raise StoreUnavailable(
                f"Swift answered the manifest of {image_id} with ETag "
                f"{etag!r}, expected {expected.hexdigest()}."
            )
        return total

    def _remove_after_failure(self, image_id: str, upload_id: str, segments: list[str]) -> None:
        try:
            with self._connection() as conn:
                self._delete_if_ours(conn, image_id, upload_id)  # a manifest, if it got in
                for name in segments:
                    self._delete_object(conn, name)
        except Exception as exc:  # noqa: BLE001 - the original error matters more
            LOG.warning(
                "Could not remove the partial upload %s of image %s from Swift "
                "(delete_partial will): %s",
                upload_id,
                image_id,
                exc,
            )

    # -- read
    def get(self, location: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        container, obj = self._parse(location)
        if length == 0:
            self.size(location)  # still: DataNotFound for a missing object
            return iter(())
        end = None if length is None else offset + length - 1
        conn = self._take()
        try:
            with _errors("read the image"):
                opened = self._open(conn, container, obj, offset, end)
        except BaseException:
            conn.close()
            raise
        if opened is None:  # nothing at or after offset
            self._give_back(conn)
            return iter(())
        return self._stream(conn, container, obj, offset, end, *opened)

    def _open(self, conn: Connection, container: str, obj: str, start: int, end: int | None):
        """(etag, length, body) of a Range GET, or None when the range is empty."""
        byte_range = f"bytes={start}-{'' if end is None else end}"
        try:
            headers, body = conn.get_object(
                container, obj, resp_chunk_size=READ_CHUNK, headers={"Range": byte_range}
            )
        except ClientException as exc:
            if exc.http_status == 416:
                return None
            raise
        return headers.get("etag", "").strip('"'), int(headers["content-length"]), body

    def _stream(
        self,
        conn: Connection,
        container: str,
        obj: str,
        offset: int,
        end: int | None,
        etag: str,
        length: int,
        body,
    ) -> Iterator[bytes]:
        received, retries, complete = 0, 0, False
        try:
            while True:
                try:
                    chunk = next(body, None)
                    if chunk is None and received < length:
                        raise http.client.IncompleteRead(b"", length - received)
                except TRANSPORT_ERRORS as exc:
                    with suppress(Exception):
                        body.close()
                    if retries >= self.retry_get_count:
                        raise _typed_error(exc, "read the image") from exc
                    retries += 1
                    LOG.info(
                        "Resuming the read of %s/%s at byte %d (retry %d of %d): %s",
                        container,
                        obj,
                        offset + received,
                        retries,
                        self.retry_get_count,
                        exc,
                    )
                    with _errors("read the image"):
                        opened = self._open(conn, container, obj, offset + received, end)
                    if opened is None or opened[0] != etag:
                        raise StoreUnavailable(
                            f"The object {container}/{obj} changed while it was read."
                        ) from exc
                    _, _, body = opened
                    length = received + opened[1]
                    continue
                if chunk is None:
                    complete = True
                    return
                received += len(chunk)
                yield chunk
        finally:
            if complete:
                self._give_back(conn)
            else:
                with suppress(Exception):
                    body.close()
                conn.close()

    def size(self, location: str) -> int:
        container, obj = self._parse(location)
        with self._connection() as conn, _errors("read the image size"):
            return int(conn.head_object(container, obj)["content-length"])

    def local_path(self, location: str):
        raise NotImplementedError("The Swift store keeps no local files.")

    # -- delete
    def delete(self, location: str) -> None:
        container, obj = self._parse(location)
        with self._connection() as conn, _errors("delete the image"):
            self._delete_any(conn, container, obj)

    def discard(self, image_id: str, upload_id: str, stored: StoredImage) -> None:
        with self._connection() as conn, _errors("delete the image"):
            self._delete_if_ours(conn, image_id, upload_id)

    def delete_partial(self, image_id: str, upload_id: str) -> None:
        with self._connection() as conn, _errors("delete a partial image"):
            self._delete_if_ours(conn, image_id, upload_id)
            prefix = f"{image_id}-{upload_id}-"
            for name in self._names(conn, self.container, prefix):
                self._delete_object(conn, name)

    def _delete_if_ours(self, conn: Connection, image_id: str, upload_id: str) -> None:
        """Delete ``image_id`` (and its segments) if ``upload_id`` wrote it."""
        try:
            headers = conn.head_object(self.container, image_id)
        except ClientException as exc:
            if exc.http_status == 404:
                return
            raise
        if headers.get(UPLOAD_ID_HEADER.lower()) == upload_id:
            self._delete_any(conn, self.container, image_id, headers)

    def _delete_any(
        self, conn: Connection, container: str, obj: str, headers: dict | None = None
    ) -> None:
        """Delete an object, an SLO with its segments, or a (Glance) DLO with its
        segments; an object already gone is not an error."""
        if headers is None:
            try:
                headers = conn.head_object(container, obj)
            except ClientException as exc:
                if exc.http_status == 404:
                    return
                raise
        if headers.get("x-static-large-object", "").lower() == "true":
            self._delete_slo(conn, container, obj)
        elif "x-object-manifest" in headers:  # glance_store's segmented images
            seg_container, _, prefix = unquote(headers["x-object-manifest"]).partition("/")
            for name in self._names(conn, seg_container, prefix):
                self._delete_object(conn, name, seg_container)
            self._delete_object(conn, obj, container)
        else:
            self._delete_object(conn, obj, container)

    def _delete_slo(self, conn: Connection, container: str, obj: str) -> None:
        _, manifest = conn.get_object(container, obj, query_string="multipart-manifest=get")
        segments: dict[str, set[str]] = {}
        for entry in json.loads(manifest):
            seg_container, _, name = entry["name"].lstrip("/").partition("/")
            segments.setdefault(unquote(seg_container), set()).add(unquote(name))
        try:
            conn.delete_object(container, obj, query_string="multipart-manifest=delete")
        except ClientException as exc:
            if exc.http_status != 404:
                raise
        # The SLO delete answers 200 even when a segment could not go: check, and retry
        # those one by one.
        for seg_container, names in segments.items():
            prefix = os.path.commonprefix(sorted(names))
            for name in set(self._names(conn, seg_container, prefix)) & names:
                self._delete_object(conn, name, seg_container)

    def _delete_object(self, conn: Connection, name: str, container: str | None = None):
        try:
            conn.delete_object(container or self.container, name)
        except ClientException as exc:
            if exc.http_status != 404:
                raise

    @staticmethod
    def _names(conn: Connection, container: str, prefix: str) -> list[str]:
        try:
            _, listing = conn.get_container(container, prefix=prefix, full_listing=True)
        except ClientException as exc:
            if exc.http_status == 404:
                return []
            raise
        return [entry["name"] for entry in listing]
