"""What a store replica removes when an upload or import it heard was given up, or
one of its own imports ends after being given up: only data that is still no one's.
A later upload or stage of the image may have put its own data under the same name
by the time the event comes or the import ends."""

from __future__ import annotations

import pytest
from nameko.testing.services import worker_factory

from services.store.backends.file import FileStore
from services.store.dependencies import Backends, Sessions
from services.store.service import StoreService

IMAGE = "6b1c1f5e-3f3a-4b8e-9a47-0a9b2f1d3c11"
UNKNOWN = None
QUEUED = {"status": "queued", "upload_id": None, "locations": []}
ENDED_IMPORT = {"status": "active", "upload_id": None, "locations": ["swift://images/x"]}
LATER_UPLOAD = {"status": "saving", "upload_id": "later", "locations": []}
NEW_STAGE = {"status": "uploading", "upload_id": "stage-2", "locations": []}
STAGED = {"status": "uploading", "upload_id": None, "locations": []}


def store_service(tmp_path, state: dict | None):
    """A store replica with one file store (``tmp_path/images``) and its staging area
    (``tmp_path/staging``), the registry answering ``state`` for the image."""
    store = FileStore(tmp_path / "images")
    service = worker_factory(
        StoreService,
        backends=Backends({"file": store}, "file"),
        sessions=Sessions(),
        staging=FileStore(tmp_path / "staging"),
    )
    service.registry.sweep_states.return_value = {} if state is None else {IMAGE: state}
    return service


def after_abandoned_import(tmp_path, state: dict | None):
    """The import's complete copy once the replica heard the import was abandoned."""
    service = store_service(tmp_path, state)
    copy = service.backends.default.datadir / IMAGE
    copy.write_bytes(b"data")
    service.delete_abandoned_upload(
        {
            "image_id": IMAGE,
            "upload_id": "task-1",
            "store": "file",
            "stores": ["file"],
            "leftovers": ["file"],
        }
    )
    return copy


@pytest.mark.parametrize("state", [UNKNOWN, QUEUED])
def test_an_abandoned_copy_no_one_owns_is_removed(state, tmp_path):
    assert not after_abandoned_import(tmp_path, state).exists()


def test_an_abandoned_copy_stays_while_a_later_upload_writes(tmp_path):
    assert after_abandoned_import(tmp_path, LATER_UPLOAD).exists()


def test_an_abandoned_copy_stays_once_a_later_upload_made_it_the_image(tmp_path):
    location = (tmp_path.resolve() / "images" / IMAGE).as_uri()
    state = {"status": "active", "upload_id": None, "locations": [location]}
    assert after_abandoned_import(tmp_path, state).exists()


def test_an_abandoned_copy_goes_though_the_image_is_active_in_another_store(tmp_path):
    location = (tmp_path.resolve() / "other" / IMAGE).as_uri()
    state = {"status": "active", "upload_id": None, "locations": [location]}
    assert not after_abandoned_import(tmp_path, state).exists()


def after_import_ended(tmp_path, state: dict | None):
    """The staging area once an import of the image ended on this replica."""
    service = store_service(tmp_path, state)
    staged = service.staging.datadir / IMAGE
    staged.write_bytes(b"staged")
    service.registry.start_import.return_value = {
        "task_id": "task-1",
        "image_id": IMAGE,
        "method": "glance-direct",
    }
    service._run_import = lambda claim: None
    service.run_import({"task_id": "task-1", "image_id": IMAGE})
    (run,), _ = service.background.call_args
    run()
    return staged


@pytest.mark.parametrize("state", [UNKNOWN, QUEUED, ENDED_IMPORT])
def test_an_ended_import_empties_the_staging_area(state, tmp_path):
    assert not after_import_ended(tmp_path, state).exists()


@pytest.mark.parametrize("state", [NEW_STAGE, STAGED])
def test_an_import_given_up_leaves_a_new_stage_alone(state, tmp_path):
    assert after_import_ended(tmp_path, state).exists()
