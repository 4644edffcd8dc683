"""The one pass over an upload's bytes: read, enforce sizes, hash, inspect, hand on.

MD5 (``checksum``) and the ``os_hash_value`` algorithm each run in order on a real OS
thread (eventlet's tpool; hashlib releases the GIL on large buffers), overlapped with
reading the socket and the backend's writing, so an upload goes as fast as the slowest
of the four allows.

A green thread reads ahead into a small ring of buffers taken from the replica's buffer
budget (services/store/buffers.py) for the upload; a buffer is refilled once both hashes
and the backend are done with it. So the socket, the backend and the hashes each go at
their own pace, up to BUFFERS chunks apart, and no memory is allocated, touched for the
first time or copied per chunk (on a busy store that costs as much CPU as a hash)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

import eventlet
from eventlet import tpool
from eventlet.queue import LightQueue

from services.store.backends.base import ImageTooLarge, SizeMismatch
from services.store.buffers import BUFFER_SIZE, BUFFERS_PER_UPLOAD, BufferPool
from services.store.formats import FormatInspector, FormatPolicy

CHUNK = BUFFER_SIZE
BUFFERS = BUFFERS_PER_UPLOAD  # per upload: at most BUFFERS * CHUNK, however large the image


class _Buffer:
    """One buffer of the ring; back in the ring when its last user releases it."""

    def __init__(self, ring: LightQueue, memory):
        self.view = memoryview(memory)
        self._ring = ring
        self._users = 0

    def hold(self, users: int) -> None:
        self._users = users

    def release(self) -> None:
        self._users -= 1
        if self._users == 0 and self._ring is not None:
            self._ring.put(self)


class _HashLane:
    """One hash, fed chunk after chunk in order on an OS thread."""

    def __init__(self, hasher):
        self._hasher = hasher
        self._queue = LightQueue()
        self._worker = eventlet.spawn(self._run)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            chunk, buffer = item
            tpool.execute(self._hasher.update, chunk)
            buffer.release()

    def put(self, chunk: memoryview, buffer: _Buffer) -> None:
        self._queue.put((chunk, buffer))

    def finish(self) -> None:
        """Wait until every chunk put so far is hashed."""
        self._queue.put(None)
        self._worker.wait()

    def stop(self) -> None:
        self._worker.kill()


class UploadPipeline:
    def __init__(
        self,
        readinto: Callable[[memoryview], int],
        declared_size: int | None,
        max_size: int,
        hashing_algorithm: str,
        disk_format: str | None,
        container_format: str | None = "bare",
        format_policy: FormatPolicy = FormatPolicy(),
        buffers: BufferPool | None = None,
    ):
        """``buffers``: the replica's buffer budget (a pool of this upload's own when
        None)."""
        self.readinto = readinto
        self.buffers = buffers
        self.declared_size = declared_size
        self.max_size = max_size
        self.hashing_algorithm = hashing_algorithm
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.os_hash = hashlib.new(hashing_algorithm)
        self.inspector = FormatInspector(disk_format, container_format, format_policy)
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

    def _next_chunk(self, buffer: memoryview) -> memoryview:
        want = min(CHUNK, len(buffer))
        if self.declared_size is not None:
            want = min(want, self.declared_size - self.size + 1)  # +1 notices extra bytes
        chunk = buffer[: self.readinto(buffer[:want])]
        self.size += len(chunk)
        if self.size > self.max_size:
            raise ImageTooLarge(
                f"Image exceeds the {self.max_size} bytes this project may "
                f"still store (image_size_cap and user_storage_quota)."
            )
        if self.declared_size is not None and self.size > self.declared_size:
            raise SizeMismatch(f"More data than the declared {self.declared_size} bytes was sent.")
        return chunk

    def chunks(self) -> Iterator[memoryview]:
        """The verified chunks; raises (and so makes the backend discard its partial
        write) as soon as anything is wrong. A chunk is only valid until the next one
        is asked for: its buffer is then handed back to be refilled."""
        pool = self.buffers or BufferPool(BUFFERS * CHUNK, CHUNK)
        memory = pool.take(BUFFERS)
        ring = LightQueue()
        ring_buffers = [_Buffer(ring, block) for block in memory]
        for buffer in ring_buffers:
            ring.put(buffer)
        lanes = (_HashLane(self.md5), _HashLane(self.os_hash))
        ready = LightQueue()
        reader = eventlet.spawn(self._read_ahead, ring, lanes, ready)
        try:
            while (item := ready.get()) is not None:
                if isinstance(item, Exception):
                    raise item
                chunk, buffer = item
                yield chunk
                buffer.release()
            for lane in lanes:
                lane.finish()
        finally:
            reader.kill()
            for lane in lanes:
                lane.stop()
            for buffer in ring_buffers:
                buffer._ring = None  # no cycle: the memory goes as soon as its views do
            pool.give_back(memory)
        self.virtual_size = self.inspector.finish()

    def _read_ahead(self, ring: LightQueue, lanes, ready: LightQueue) -> None:
        """Fill free buffers from the socket while the backend writes and the hashes
        work; hand on each chunk, then None at the end or the error that stopped it."""
        try:
            while True:
                buffer = ring.get()
                chunk = self._next_chunk(buffer.view)
                if not chunk:
                    break
                buffer.hold(len(lanes) + 1)
                for lane in lanes:
                    lane.put(chunk, buffer)
                self.inspector.feed(chunk)
                ready.put((chunk, buffer))
            if self.declared_size is not None and self.size != self.declared_size:
                raise SizeMismatch(
                    f"The upload ended after {self.size} of the declared "
                    f"{self.declared_size} bytes."
                )
        except Exception as exc:  # noqa: BLE001 - raised again where the chunks are read
            ready.put(exc)
            return
        ready.put(None)

    def result(self) -> dict:
        return {
            "size": self.size,
            "checksum": self.md5.hexdigest(),
            "os_hash_algo": self.hashing_algorithm,
            "os_hash_value": self.os_hash.hexdigest(),
            "virtual_size": self.virtual_size,
        }
