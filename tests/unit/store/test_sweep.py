"""The store sweep (services/store/sweep.py) over a real file store with a registry
double: which files are orphans, the grace period, the claim, a file replaced meanwhile."""

from __future__ import annotations

import os
import time
import uuid
from types import SimpleNamespace

from services.common.errors import ServiceUnavailable
from services.store import sweep
from services.store.backends.file import FileStore
from services.store.dependencies import Backends


class Registry:
    """Answers ``states`` for the images it knows; ``token`` is the claim it hands out."""

    def __init__(self, states, token="t1"):
        self.states = states
        self.token = token
        self.finished = []

    def claim_sweep(self):
        return self.token

    def renew_sweep(self, token):
        return token

    def finish_sweep(self, token):
        self.finished.append(token)

    def sweep_states(self, image_ids):
        return {i: self.states[i] for i in image_ids if i in self.states}


def state(status, upload_id=None, locations=()):
    return {"status": status, "upload_id": upload_id, "locations": list(locations)}


def conf(grace=60, interval=600):
    return SimpleNamespace(
        store=SimpleNamespace(
            sweep_interval=interval, sweep_grace_seconds=grace, sweep_lease_seconds=60
        )
    )


def old_file(path, age=3600):
    path.write_bytes(b"data")
    past = time.time() - age
    os.utime(path, (past, past))
    return path


def ids(n):
    return [str(uuid.uuid4()) for _ in range(n)]


def test_parse_name():
    image_id, upload_id = ids(2)
    assert sweep.parse_name(image_id) == (image_id, None)
    assert sweep.parse_name(f"{image_id}.{upload_id}.part") == (image_id, upload_id)
    assert sweep.parse_name("lost+found") is None
    assert sweep.parse_name(f"{image_id}.tmp") is None
    assert sweep.parse_name(image_id.replace("-", "")) is None


def test_orphans_removed_and_owned_data_kept(tmp_path):
    active, queued, deleted, unknown, saving, dead_upload = ids(6)
    live_upload, old_upload = ids(2)
    store = FileStore(tmp_path)
    files = {
        "active": old_file(tmp_path / active),
        "queued": old_file(tmp_path / queued),
        "deleted": old_file(tmp_path / deleted),
        "unknown": old_file(tmp_path / unknown),
        "saving-part": old_file(tmp_path / f"{saving}.{live_upload}.part"),
        "saving-final": old_file(tmp_path / saving),
        "dead-part": old_file(tmp_path / f"{dead_upload}.{old_upload}.part"),
        "not-ours": old_file(tmp_path / "README"),
        "recent-orphan": tmp_path / ids(1)[0],
    }
    files["recent-orphan"].write_bytes(b"new")
    registry = Registry(
        {
            active: state("active", locations=[(tmp_path / active).as_uri()]),
            queued: state("queued"),
            deleted: state("deleted"),
            saving: state("saving", upload_id=live_upload),
            dead_upload: state("queued"),
        }
    )
    removed = sweep.run(registry, Backends({"file": store}, "file"), conf())
    assert removed == 4
    gone = {name for name, path in files.items() if not path.exists()}
    assert gone == {"queued", "deleted", "unknown", "dead-part"}
    assert registry.finished == ["t1"]


def test_a_copy_in_another_file_store_does_not_own_the_file(tmp_path):
    """The image is active with its data in store ``a``; the same name in store ``b``
    (an import's copy that was never recorded) is an orphan there."""
    image_id = ids(1)[0]
    a, b = FileStore(tmp_path / "a"), FileStore(tmp_path / "b")
    kept, orphan = old_file(a.datadir / image_id), old_file(b.datadir / image_id)
    registry = Registry({image_id: state("active", locations=[kept.as_uri()])})
    assert sweep.run(registry, Backends({"a": a, "b": b}, "a"), conf()) == 1
    assert kept.exists() and not orphan.exists()


def test_no_claim_no_sweep(tmp_path):
    orphan = old_file(tmp_path / ids(1)[0])
    registry = Registry({}, token=None)
    assert sweep.run(registry, Backends({"file": FileStore(tmp_path)}, "file"), conf()) == 0
    assert orphan.exists()


def test_sweep_off(tmp_path):
    orphan = old_file(tmp_path / ids(1)[0])
    backends = Backends({"file": FileStore(tmp_path)}, "file")
    assert sweep.run(Registry({}), backends, conf(interval=0)) == 0
    assert orphan.exists()


def test_a_file_replaced_meanwhile_is_kept(tmp_path):
    image_id = ids(1)[0]
    store = FileStore(tmp_path)
    path = old_file(tmp_path / image_id)
    seen = dict(store.files())[image_id]
    # an upload renames a new file into place after the sweep looked
    fresh = tmp_path / "fresh"
    fresh.write_bytes(b"new data")
    os.rename(fresh, path)
    assert not store.remove_unchanged(image_id, seen)
    assert path.read_bytes() == b"new data"


def test_delete_leftover(tmp_path):
    image_id = ids(1)[0]
    store = FileStore(tmp_path)
    (tmp_path / image_id).write_bytes(b"x")
    store.delete_leftover(image_id)
    store.delete_leftover(image_id)  # gone already: not an error
    assert not (tmp_path / image_id).exists()


def test_registry_unavailable_skips_the_sweep(tmp_path):
    class Away(Registry):
        def claim_sweep(self):
            raise ServiceUnavailable("The database is unavailable, retry")

    orphan = old_file(tmp_path / ids(1)[0])
    backends = Backends({"file": FileStore(tmp_path)}, "file")
    assert sweep.run(Away({}), backends, conf()) == 0
    assert orphan.exists()
