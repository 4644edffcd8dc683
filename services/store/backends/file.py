"""The file store: one file per image under ``filesystem_store_datadir``.

Writes go to ``<image_id>.<upload_id>.part`` and are renamed into place only when
complete (and fsynced), so a reader never sees a partial image and a crash leaves only a
``.part`` file that ``delete_partial`` removes.

Every upload of an image is renamed onto the same ``<image_id>``, so the rename waits for
the registry's word (``add``'s ``confirm``): an upload given up while it was still
writing (its replica was frozen, or its lease renewals were lost) must not replace the
file of a later upload that made the image active. Once confirmed, the upload holds the
image's claim for a lease, so a file already there is a leftover of no image and is
replaced. A completion refused after the rename removes the file only while it is still
the one written (``discard``)."""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

from eventlet import tpool

from services.store.backends.base import (
    DataNotFound,
    StorageFull,
    StoredImage,
    StoreUnavailable,
)

READ_CHUNK = 4 << 20
WRITE_BEHIND = 32 << 20  # written bytes are handed to the disk every this many

try:
    _sync_file_range = ctypes.CDLL(None, use_errno=True).sync_file_range
    _sync_file_range.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
except AttributeError:  # not Linux: the closing fsync does all the writing
    _sync_file_range = None
_SYNC_FILE_RANGE_WRITE = 2


def _write_all(fd: int, chunk: bytes, written: int) -> int:
    """Write ``chunk`` at the end of the ``written`` bytes; start the disk writing what
    has piled up since the last WRITE_BEHIND boundary (without waiting for it), so that
    the closing fsync finds little left to do and dirty pages stay few."""
    view = memoryview(chunk)
    while view:
        view = view[os.write(fd, view) :]
    total = written + len(chunk)
    if _sync_file_range is not None and total // WRITE_BEHIND > written // WRITE_BEHIND:
        start = written // WRITE_BEHIND * WRITE_BEHIND
        # a hint only: where it fails, the closing fsync still writes everything
        _sync_file_range(fd, start, total - start, _SYNC_FILE_RANGE_WRITE)
    return total


def _os_error(exc: OSError, what: str) -> Exception:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFull(f"There is not enough disk space on the image storage media to {what}.")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StoreUnavailable(f"The file store is not writable: {exc.strerror}.")
    if exc.errno == errno.ENOENT:
        return DataNotFound("The image data was not found in the file store.")
    return StoreUnavailable(f"The file store failed to {what}: {exc.strerror}.")


class FileStore:
    schemes = ("file",)
    writable = True
    local_files = True

    def __init__(self, datadir: Path):
        self.datadir = Path(datadir).resolve()
        self.datadir.mkdir(parents=True, exist_ok=True)

    def _path(self, location: str) -> Path:
        parsed = urlparse(location)
        path = Path(unquote(parsed.path)).resolve()
        if parsed.scheme != "file" or self.datadir not in path.parents:
            raise DataNotFound(f"{location} is not a location of this file store.")
        return path

    def holds(self, location: str) -> bool:
        """Whether ``location`` names a file of this store's directory."""
        try:
            self._path(location)
        except DataNotFound:
            return False
        return True

    def add(
        self,
        image_id: str,
        chunks: Iterable[bytes],
        size: int | None,
        upload_id: str,
        confirm: Callable[[], object] | None = None,
    ) -> StoredImage:
        final = self.datadir / image_id
        partial = self.datadir / f"{image_id}.{upload_id}.part"
        try:
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        except OSError as exc:
            raise _os_error(exc, "store the image") from exc
        try:
            try:
                written = 0
                for chunk in chunks:  # errors of the source propagate as they are
                    # an OS thread writes, so the service reads on meanwhile
                    written = tpool.execute(_write_all, fd, chunk, written)
                tpool.execute(os.fsync, fd)
                stat = os.fstat(fd)
                if confirm is not None:
                    confirm()
                os.rename(partial, final)
            except OSError as exc:
                raise _os_error(exc, "store the image") from exc
            finally:
                os.close(fd)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return StoredImage(location=final.as_uri(), size=written, written=stat)

    def get(self, location: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        path = self._path(location)
        try:
            handle = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by the generator
        except OSError as exc:
            raise _os_error(exc, "read the image") from exc
        return self._read(handle, offset, length)

    @staticmethod
    def _read(handle, offset: int, length: int | None) -> Iterator[bytes]:
        with handle:
            handle.seek(offset)
            remaining = length
            while remaining is None or remaining > 0:
                chunk = handle.read(READ_CHUNK if remaining is None else min(READ_CHUNK, remaining))
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    def local_path(self, location: str) -> Path:
        """The file holding the image, for a server that sends it with ``sendfile``."""
        return self._path(location)

    def size(self, location: str) -> int:
        try:
            return self._path(location).stat().st_size
        except OSError as exc:
            raise _os_error(exc, "read the image") from exc

    def delete(self, location: str) -> None:
        try:
            self._path(location).unlink(missing_ok=True)
        except OSError as exc:
            raise _os_error(exc, "delete the image") from exc

    def delete_partial(self, image_id: str, upload_id: str) -> None:
        (self.datadir / f"{image_id}.{upload_id}.part").unlink(missing_ok=True)

    def discard(self, image_id: str, upload_id: str, stored: StoredImage) -> None:
        self.remove_unchanged(self._path(stored.location).name, stored.written)

    def delete_leftover(self, image_id: str) -> None:
        """The complete file of an image that never recorded it as a location (an
        upload whose completion was lost), when the image is deleted."""
        (self.datadir / image_id).unlink(missing_ok=True)

    def files(self) -> list[tuple[str, os.stat_result]]:
        """Every file of the store with its stat, for the sweep (services/store/sweep.py)."""
        found = []
        with os.scandir(self.datadir) as entries:
            for entry in entries:
                try:
                    if entry.is_file(follow_symlinks=False):
                        found.append((entry.name, entry.stat(follow_symlinks=False)))
                except FileNotFoundError:
                    continue
        return found

    def remove_unchanged(self, name: str, seen: os.stat_result) -> bool:
        """Remove the file ``name`` if it is still the one ``seen`` (same inode, size and
        modification time): never a file an upload renamed into place meanwhile."""
        path = self.datadir / name
        try:
            now = path.stat()
        except FileNotFoundError:
            return False
        if (now.st_ino, now.st_size, now.st_mtime_ns) != (
            seen.st_ino,
            seen.st_size,
            seen.st_mtime_ns,
        ):
            return False
        path.unlink(missing_ok=True)
        return True
