"""What every store backend declares, and the store service reading those declarations
(never probing a backend for methods)."""

from __future__ import annotations

import pytest
from nameko.testing.services import worker_factory
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from services.store.backends.base import StoreBackend, StoredImage
from services.store.backends.file import FileStore
from services.store.backends.http import HttpStore
from services.store.backends.swift import SwiftStore
from services.store.dependencies import Backends, Sessions
from services.store.service import StoreService

CAPABILITIES = ("writable", "local_files")


@pytest.mark.parametrize("cls", [FileStore, HttpStore, SwiftStore])
def test_each_backend_declares_its_capabilities(cls):
    for name in CAPABILITIES:
        assert isinstance(cls.__dict__.get(name), bool), f"{cls.__name__} must declare {name}"


def test_only_the_file_store_has_local_files(tmp_path):
    assert FileStore.local_files and not HttpStore.local_files and not SwiftStore.local_files
    with pytest.raises(NotImplementedError):
        HttpStore().local_path("http://example.com/image")


class Remote:
    """A backend whose data is not local, though it has a ``local_path`` attribute: the
    service must go by ``local_files``, not by what attributes it finds."""

    schemes = ("remote",)
    writable = False
    local_files = False

    def __init__(self, data: bytes):
        self.data = data

    def add(self, image_id, chunks, size, upload_id, confirm=None) -> StoredImage:
        raise NotImplementedError

    def get(self, location, offset=0, length=None):
        yield self.data[offset : None if length is None else offset + length]

    def size(self, location) -> int:
        return len(self.data)

    def local_path(self, location):
        raise AssertionError("local_path used on a backend without local_files")

    def delete(self, location) -> None:
        pass

    def delete_partial(self, image_id, upload_id) -> None:
        pass

    def discard(self, image_id, upload_id, stored) -> None:
        pass


def download(backend, tmp_path, offset=0, length=None) -> bytes:
    backends = Backends({"remote": backend, "file": FileStore(tmp_path)}, "file")
    service = worker_factory(StoreService, backends=backends, sessions=Sessions())
    token = service.sessions.add(
        "download", {"location": "remote://x", "offset": offset, "length": length}
    )
    request = Request(EnvironBuilder(path=f"/downloads/{token}").get_environ())
    response = service.send_download(request, token)
    assert response.status_code == 200
    return b"".join(response.response)


def test_a_backend_without_local_files_is_read_through_get(tmp_path):
    backend = Remote(b"0123456789")
    assert isinstance(backend, StoreBackend)
    assert download(backend, tmp_path) == b"0123456789"
    assert download(backend, tmp_path, 2, 3) == b"234"
