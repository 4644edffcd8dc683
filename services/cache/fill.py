"""Filling the cache with one image: one filler at a time, nothing visible until verified.

A fill writes into ``incomplete/<image_id>`` while holding an exclusive ``flock`` on it:
a second filler of the same image fails to take the lock and does not fill (its client is
served from the store as usual), and the kernel drops the lock when a filler dies, so the
cleaner knows an unlocked incomplete file is abandoned. When all the bytes are there, the
file is hashed with the image's own algorithm and compared with its ``os_hash_value``
(else its MD5 ``checksum``), flushed to disk, renamed to ``<image_id>`` (atomic) and
recorded in the index; only then can it be served. A file that does not match goes to
``invalid/``. A fill that ends early removes its file."""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import threading

from services.cache.index import ImageCache, cacheable_id

log = logging.getLogger(__name__)

HASH_BLOCK = 4 << 20


def cacheable(image: dict) -> bool:
    return (
        image.get("status") == "active"
        and image.get("size") is not None
        and bool(image.get("locations"))
        and bool(image.get("os_hash_value") or image.get("checksum"))
        and cacheable_id(image.get("id", ""))
    )


class Fill:
    """One image being written into the cache; ``start`` answers None when the image
    cannot or need not be filled now (another filler holds it, it is cached, ...)."""

    def __init__(self, cache: ImageCache, image: dict, fd: int):
        self.cache = cache
        self.image = image
        self.fd = fd
        self.path = cache.incomplete / image["id"]
        self.written = 0
        self.finishing = False

    @classmethod
    def start(cls, cache: ImageCache, image: dict) -> Fill | None:
        if not cacheable(image) or image["size"] > cache.max_size:
            return None
        path = cache.incomplete / image["id"]
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # the lock must be on the file still at that path (not one a filler before
            # us renamed into place, or the cleaner removed)
            if os.stat(path).st_ino != os.fstat(fd).st_ino or cache.is_cached(image["id"]):
                raise BlockingIOError
        except (BlockingIOError, FileNotFoundError):
            os.close(fd)
            return None
        os.ftruncate(fd, 0)
        return cls(cache, image, fd)

    def write(self, data) -> None:
        view = memoryview(data)
        while view:
            done = os.pwrite(self.fd, view, self.written)
            self.written += done
            view = view[done:]

    def finish_in_background(self) -> threading.Thread | None:
        """``finish`` in a thread of its own (the gateway: after the client has its
        bytes, so hashing the file never holds up a download)."""
        self.finishing = True
        if self.fd < 0:  # given up already
            return None
        thread = threading.Thread(target=self.finish, name="cache-fill", daemon=True)
        thread.start()
        return thread

    def release(self) -> None:
        """The response is done with the fill: abort it unless it is being finished."""
        if not self.finishing:
            self.abort()

    def fall_back(self) -> None:
        """Give this fill up and queue the image for the node's prefetcher, which fills
        it from the store on its own (a download whose cache file could not keep up)."""
        self.abort()
        self.cache.queue(self.image["id"])
        log.info("image %s: the cache file fell behind the download; queued", self.image["id"])

    def abort(self) -> None:
        """Give the fill up: its file goes (we still hold the lock on it)."""
        if self.fd < 0:
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self._close()

    def _close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def _digest_matches(self, pause) -> bool:
        image = self.image
        if image.get("os_hash_value"):
            algo, expected = image.get("os_hash_algo") or "sha512", image["os_hash_value"]
        else:
            algo, expected = "md5", image["checksum"]
        try:
            digest = hashlib.new(algo, usedforsecurity=False)
        except ValueError:
            log.warning("image %s: unknown hash algorithm %s; not cached", image["id"], algo)
            return False
        offset = 0
        while block := os.pread(self.fd, HASH_BLOCK, offset):
            digest.update(block)
            offset += len(block)
            if pause is not None:
                pause()
        return digest.hexdigest() == expected

    def finish(self, pause=None) -> bool:
        """Verify, publish and record the fill (after its last byte); whether the image
        is now cached. Prunes the cache when the fill took it over its size. ``pause()``
        is called between the blocks hashed (the cache service: let other green threads
        run)."""
        if self.fd < 0:
            return False
        image_id = self.image["id"]
        try:
            if self.written != self.image["size"] or not self._digest_matches(pause):
                log.warning(
                    "image %s: the cache fill does not match the image's size or hash; moved to %s",
                    image_id,
                    self.cache.invalid,
                )
                os.replace(self.path, self.cache.invalid / image_id)
                return False
            os.fdatasync(self.fd)
            final = self.cache.path(image_id)
            os.rename(self.path, final)
            self.cache.commit(self.image, final)
        except FileNotFoundError:  # the cleaner took a stalled fill away
            return False
        except Exception:
            self.abort()
            raise
        finally:
            self._close()
        log.info("image %s: cached (%d bytes)", image_id, self.written)
        if self.cache.total_size() > self.cache.max_size:
            files, size = self.cache.prune()
            log.info("image cache over its size: pruned %d images (%d bytes)", files, size)
        return True
