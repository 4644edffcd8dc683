"""The contract every writable store backend passes. A backend's test module subclasses
``WritableBackendContract`` and provides a ``backend`` fixture."""

from __future__ import annotations

import hashlib
import os
import uuid

import pytest

from services.common.errors import Conflict
from services.store.backends.base import DataNotFound, StoreBackend

MiB = 1 << 20


def chunks_of(data: bytes, size: int = MiB):
    for i in range(0, len(data), size):
        yield data[i : i + size]


class Boom(Exception):
    pass


def failing_after(data: bytes, n_chunks: int):
    for i, chunk in enumerate(chunks_of(data)):
        if i == n_chunks:
            raise Boom("client went away")
        yield chunk


def refused():
    """``add``'s confirm for an upload the registry gave up while its data came."""
    raise Conflict("The upload of image i was given up (its lease expired).")


class WritableBackendContract:
    sizes = (0, 1, MiB - 1, 3 * MiB + 17)

    def test_is_a_backend(self, backend):
        assert isinstance(backend, StoreBackend)
        assert backend.writable

    @pytest.mark.parametrize("size_index", range(4))
    def test_add_get_roundtrip(self, backend, size_index):
        data = os.urandom(self.sizes[size_index])
        image_id = str(uuid.uuid4())
        stored = backend.add(image_id, chunks_of(data), len(data), upload_id="u1")
        assert stored.size == len(data)
        assert "@" not in stored.location.split("://", 1)[1].split("/", 1)[0], (
            "no credentials in locations"
        )
        assert b"".join(backend.get(stored.location)) == data
        assert backend.size(stored.location) == len(data)
        backend.delete(stored.location)
        with pytest.raises(DataNotFound):
            b"".join(backend.get(stored.location))
        backend.delete(stored.location)  # already gone: not an error

    def test_add_without_size(self, backend):
        data = os.urandom(2 * MiB + 5)
        stored = backend.add(str(uuid.uuid4()), chunks_of(data), None, upload_id="u2")
        assert stored.size == len(data)
        assert (
            hashlib.md5(b"".join(backend.get(stored.location))).digest()
            == hashlib.md5(data).digest()
        )
        backend.delete(stored.location)

    def test_ranges(self, backend):
        data = os.urandom(3 * MiB)
        stored = backend.add(str(uuid.uuid4()), chunks_of(data), len(data), upload_id="u3")
        assert b"".join(backend.get(stored.location, 10, 100)) == data[10:110]
        assert b"".join(backend.get(stored.location, MiB + 3)) == data[MiB + 3 :]
        assert b"".join(backend.get(stored.location, 0, 0)) == b""
        backend.delete(stored.location)

    def test_failed_add_leaves_nothing(self, backend, leftovers):
        data = os.urandom(3 * MiB)
        image_id = str(uuid.uuid4())
        with pytest.raises(Boom):
            backend.add(image_id, failing_after(data, 2), len(data), upload_id="u4")
        assert leftovers(image_id) == []

    def test_delete_partial_is_safe_when_nothing_is_left(self, backend, leftovers):
        image_id = str(uuid.uuid4())
        backend.delete_partial(image_id, "never-started")
        assert leftovers(image_id) == []

    def test_an_upload_refused_before_naming_leaves_the_image_data(self, backend, leftovers):
        """A zombie upload (given up while its data came) finishes after a later upload
        made the image active: the image keeps the later upload's data."""
        image_id = str(uuid.uuid4())
        live = os.urandom(MiB + 3)
        stored = backend.add(image_id, chunks_of(live), len(live), upload_id="live")
        zombie = os.urandom(3 * MiB)
        with pytest.raises(Conflict):
            backend.add(image_id, chunks_of(zombie), len(zombie), "zombie", confirm=refused)
        assert b"".join(backend.get(stored.location)) == live
        assert not [name for name in leftovers(image_id) if "zombie" in name]
        backend.delete(stored.location)

    def test_discard_keeps_a_later_write(self, backend, leftovers):
        """A refused completion removes its data only while no later upload's has taken
        its place."""
        image_id = str(uuid.uuid4())
        first = backend.add(image_id, chunks_of(b"first"), 5, upload_id="first")
        later = backend.add(image_id, chunks_of(b"later!"), 6, upload_id="later")
        backend.discard(image_id, "first", first)
        assert b"".join(backend.get(later.location)) == b"later!"
        backend.discard(image_id, "later", later)
        assert leftovers(image_id) == []
