from __future__ import annotations

import errno
import os

import pytest

from services.store.backends.base import StorageFull, StoreUnavailable
from services.store.backends.file import FileStore
from tests.unit.store.contract import WritableBackendContract, chunks_of


@pytest.fixture
def backend(tmp_path):
    return FileStore(tmp_path / "images")


@pytest.fixture
def leftovers(backend):
    return lambda image_id: sorted(p.name for p in backend.datadir.glob(f"{image_id}*"))


class TestFileStore(WritableBackendContract):
    pass


def test_partial_file_of_a_dead_writer_is_removed(backend, leftovers):
    (backend.datadir / "img.up1.part").write_bytes(b"half")
    backend.delete_partial("img", "up1")
    assert leftovers("img") == []


def _no_space(fd, data):
    """Every write fails as on a full disk."""
    raise OSError(errno.ENOSPC, "No space left on device")


def test_no_space_is_storage_full(backend, monkeypatch, leftovers):
    monkeypatch.setattr(os, "write", _no_space)
    with pytest.raises(StorageFull):
        backend.add("img", chunks_of(b"x" * 10), 10, upload_id="u")
    assert leftovers("img") == []


def test_permission_denied_is_unavailable(backend, monkeypatch):
    def denied(*args, **kwargs):
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(StoreUnavailable):
        backend.add("img", chunks_of(b"x"), 1, upload_id="u")


def test_locations_outside_the_datadir_are_refused(backend):
    from services.store.backends.base import DataNotFound

    with pytest.raises(DataNotFound):
        backend.get("file:///etc/passwd")
