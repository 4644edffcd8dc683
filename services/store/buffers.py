"""A store replica's budget of upload buffers (``[store] upload_buffer_memory``).

Every upload reads into a small ring of buffers (services/store/pipeline.py). They come
from this pool: an upload takes one buffer, waiting while the budget is spent, and up to
``BUFFERS_PER_UPLOAD`` more when they are free, so a replica never holds more upload
buffers than its budget however many uploads arrive, and an upload never waits for a
buffer while holding others (no deadlock). Buffers go back to the pool for the next
upload; once no upload is running the pool lets them all go and asks the C library to
hand freed memory back to the system (``malloc_trim``), so a replica's RSS comes back
down after a burst. Buffers are anonymous mappings, unmapped as soon as the last view of
them goes."""

from __future__ import annotations

import ctypes
import gc
import logging
import mmap

from eventlet.semaphore import Semaphore
from nameko.extensions import DependencyProvider

log = logging.getLogger(__name__)

#: bytes of one buffer: one read from the socket, one hash update, one write
BUFFER_SIZE = 1 << 20
#: buffers one upload uses at most (the reader, both hashes and the backend each at
#: their own pace, up to this many chunks apart)
BUFFERS_PER_UPLOAD = 4

try:
    _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
    _malloc_trim.argtypes = (ctypes.c_size_t,)
except (OSError, AttributeError):  # not glibc: freed memory stays with the allocator
    _malloc_trim = None


def trim() -> None:
    """Hand the C heap's free pages back to the system."""
    if _malloc_trim is not None:
        _malloc_trim(0)


class BufferPool:
    def __init__(self, budget_bytes: int, buffer_size: int = BUFFER_SIZE):
        self.buffer_size = buffer_size
        self.capacity = max(1, budget_bytes // buffer_size)
        self._slots = Semaphore(self.capacity)
        self._idle: list[mmap.mmap] = []
        self._users = 0

    def take(self, want: int = BUFFERS_PER_UPLOAD) -> list[mmap.mmap]:
        """Between 1 and ``want`` buffers; waits only for the first."""
        self._slots.acquire()
        count = 1
        while count < want and self._slots.acquire(blocking=False):
            count += 1
        self._users += 1
        return [self._new() for _ in range(count)]

    def _new(self) -> mmap.mmap:
        return self._idle.pop() if self._idle else mmap.mmap(-1, self.buffer_size)

    def give_back(self, buffers: list[mmap.mmap]) -> None:
        self._users -= 1
        if self._users:
            self._idle.extend(buffers)
        else:
            self._idle.clear()  # the last upload ended: let the memory go
        for _ in buffers:
            self._slots.release()
        if not self._users:
            gc.collect()  # what cycles still hold (a generator never closed)
            trim()

    @property
    def in_use(self) -> int:
        return self.capacity - self._slots.counter


class UploadBuffers(DependencyProvider):
    """Injects the replica's BufferPool, of ``[store] upload_buffer_memory`` MiB."""

    def setup(self):
        conf = self.container.config["TESSERA_CONF"]
        self.pool = BufferPool(conf.store.upload_buffer_memory << 20)

    def get_dependency(self, worker_ctx) -> BufferPool:
        return self.pool
