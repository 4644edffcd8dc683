"""An abandoned import's complete copy (``upload.abandoned`` with ``leftovers``) is
removed only while it is still no one's: the event can arrive after a later upload of
the image has put its own data under the same name."""

from __future__ import annotations

import pytest
from nameko.testing.services import worker_factory

from services.store.backends.file import FileStore
from services.store.dependencies import Backends, Sessions
from services.store.service import StoreService

IMAGE = "6b1c1f5e-3f3a-4b8e-9a47-0a9b2f1d3c11"


def abandoned(state: dict | None, tmp_path):
    """The image's file after the store heard the import was abandoned, the registry
    answering ``state`` for the image."""
    store = FileStore(tmp_path)
    (store.datadir / IMAGE).write_bytes(b"data")
    service = worker_factory(
        StoreService, backends=Backends({"file": store}, "file"), sessions=Sessions()
    )
    service.registry.sweep_states.return_value = {} if state is None else {IMAGE: state}
    service.delete_abandoned_upload(
        {
            "image_id": IMAGE,
            "upload_id": "task-1",
            "store": "file",
            "stores": ["file"],
            "leftovers": ["file"],
        }
    )
    return store.datadir / IMAGE


@pytest.mark.parametrize(
    "state",
    [
        None,  # unknown to the registry
        {"status": "queued", "upload_id": None, "locations": []},
    ],
)
def test_a_copy_no_one_owns_is_removed(state, tmp_path):
    assert not abandoned(state, tmp_path).exists()


def test_a_later_upload_in_progress_keeps_it(tmp_path):
    state = {"status": "saving", "upload_id": "later", "locations": []}
    assert abandoned(state, tmp_path).exists()


def test_a_later_upload_that_made_it_active_keeps_it(tmp_path):
    location = (tmp_path.resolve() / IMAGE).as_uri()
    state = {"status": "active", "upload_id": None, "locations": [location]}
    assert abandoned(state, tmp_path).exists()
