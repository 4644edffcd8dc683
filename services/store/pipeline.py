"""The one pass over an upload's bytes: read, enforce sizes, hash, inspect, hand on.

MD5 (``checksum``) and the ``os_hash_value`` algorithm run on two real OS threads
(eventlet's tpool; hashlib releases the GIL on large buffers), overlapped with reading
the next chunk and writing the previous one, so an upload goes as fast as the slower of
the two hashes."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

import eventlet
from eventlet import tpool

from services.store.backends.base import ImageTooLarge, SizeMismatch
from services.store.formats import FormatInspector

CHUNK = 2 << 20


def _in_os_thread(fn, *args):
    return eventlet.spawn(tpool.execute, fn, *args)


class UploadPipeline:
    def __init__(
        self,
        read: Callable[[int], bytes],
        declared_size: int | None,
        max_size: int,
        hashing_algorithm: str,
        disk_format: str | None,
    ):
        self.read = read
        self.declared_size = declared_size
        self.max_size = max_size
        self.hashing_algorithm = hashing_algorithm
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.os_hash = hashlib.new(hashing_algorithm)
        self.inspector = FormatInspector(disk_format)
        self.size = 0
        self.virtual_size: int | None = None
        self._check_declared_size()

    def _check_declared_size(self) -> None:
        if self.declared_size is not None and self.declared_size > self.max_size:
            raise ImageTooLarge(
                f"Image of {self.declared_size} bytes exceeds the "
                f"{self.max_size} bytes this project may still store "
                f"(image_size_cap and user_storage_quota)."
            )

    def _next_chunk(self) -> bytes:
        want = CHUNK
        if self.declared_size is not None:
            want = min(CHUNK, self.declared_size - self.size + 1)  # +1 notices extra bytes
        chunk = self.read(want)
        self.size += len(chunk)
        if self.size > self.max_size:
            raise ImageTooLarge(
                f"Image exceeds the {self.max_size} bytes this project may "
                f"still store (image_size_cap and user_storage_quota)."
            )
        if self.declared_size is not None and self.size > self.declared_size:
            raise SizeMismatch(f"More data than the declared {self.declared_size} bytes was sent.")
        return chunk

    def chunks(self) -> Iterator[bytes]:
        """The verified chunks; raises (and so makes the backend discard its partial
        write) as soon as anything is wrong."""
        pending = ()
        while True:
            chunk = self._next_chunk()
            for job in pending:
                job.wait()
            if not chunk:
                break
            pending = (
                _in_os_thread(self.md5.update, chunk),
                _in_os_thread(self.os_hash.update, chunk),
            )
            self.inspector.feed(chunk)
            yield chunk
        if self.declared_size is not None and self.size != self.declared_size:
            raise SizeMismatch(
                f"The upload ended after {self.size} of the declared {self.declared_size} bytes."
            )
        self.virtual_size = self.inspector.finish()

    def result(self) -> dict:
        return {
            "size": self.size,
            "checksum": self.md5.hexdigest(),
            "os_hash_algo": self.hashing_algorithm,
            "os_hash_value": self.os_hash.hexdigest(),
            "virtual_size": self.virtual_size,
        }
