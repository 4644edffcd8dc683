"""An import to several stores on a store replica (ImportWorker._run_import): when the
image becomes active, what is recorded and what is removed, store by store, as Glance's
_ImportToStore tasks."""

from __future__ import annotations

from types import SimpleNamespace
from unittest import mock

import pytest

from services.common.errors import Conflict
from services.store.imports import ImportWorker

COPIED = {"size": 3, "checksum": "c" * 32, "os_hash_algo": "sha512", "os_hash_value": "a" * 128}


class Worker(ImportWorker):
    """The import loop with stores that succeed or fail on demand; every call to the
    registry and every write or removal is recorded, in order."""

    def __init__(self, broken: set[str]):
        self.broken = broken
        self.calls: list = []
        self.registry = mock.Mock()

        def record(name):
            return lambda *args: self.calls.append((name, *args))

        for name in ("activate_import", "finish_import", "fail_import", "renew_import"):
            setattr(self.registry, name, mock.Mock(side_effect=record(name)))

    def _keep_import_lease(self, task_id, progress) -> None:
        pass

    def _write_to(self, claim, store_id, progress):
        self.calls.append(("write", store_id))
        if store_id in self.broken:
            raise OSError(f"{store_id} is full")
        backend = SimpleNamespace(
            discard=lambda image_id, task_id, stored: self.calls.append(("remove", stored.location))
        )
        stored = SimpleNamespace(location=f"file:///{store_id}/i", metadata={})
        return backend, stored, dict(COPIED)


def claim(stores, must_succeed, method="glance-direct"):
    return {
        "task_id": "t",
        "image_id": "i",
        "method": method,
        "stores": stores,
        "all_stores_must_succeed": must_succeed,
        "disk_format": "raw",
    }


def locations(result) -> list[str]:
    return [copy["location"] for copy in result["locations"]]


def test_first_copy_activates_when_all_need_not_succeed():
    """As Glance's set_active on each store: active after the first store that took
    the data, before the next stores are written; the rest recorded at the end."""
    worker = Worker(broken={"a"})
    worker._run_import(claim(["a", "b", "c"], must_succeed=False))
    names = [call[0] for call in worker.calls]
    assert names == ["write", "renew_import", "write", "activate_import"] + [
        "renew_import",
        "write",
        "finish_import",
    ]
    activated = next(call[2] for call in worker.calls if call[0] == "activate_import")
    finished = next(call[2] for call in worker.calls if call[0] == "finish_import")
    assert locations(activated) == ["file:///b/i"] and activated["failed"] == ["a"]
    assert locations(finished) == ["file:///c/i"] and finished["failed"] == ["a"]


def test_later_stores_all_failing_leave_the_activated_copy():
    worker = Worker(broken={"b", "c"})
    worker._run_import(claim(["a", "b", "c"], must_succeed=False))
    finished = next(call[2] for call in worker.calls if call[0] == "finish_import")
    assert locations(finished) == [] and finished["failed"] == ["b", "c"]
    assert not any(call[0] in ("remove", "fail_import") for call in worker.calls)


def test_an_import_ended_meanwhile_removes_only_the_unrecorded_copies():
    worker = Worker(broken=set())
    worker.registry.finish_import.side_effect = Conflict("given up")
    worker._run_import(claim(["a", "b"], must_succeed=False))
    removed = [call[1] for call in worker.calls if call[0] == "remove"]
    assert removed == ["file:///b/i"]  # a's copy is the active image's location
    worker.registry.fail_import.assert_called_once()


@pytest.mark.parametrize("method", ["glance-direct", "copy-image"])
def test_no_early_activation_when_all_must_succeed_or_for_a_copy(method):
    worker = Worker(broken=set())
    worker._run_import(claim(["a", "b"], must_succeed=method == "glance-direct", method=method))
    worker.registry.activate_import.assert_not_called()
    finished = next(call[2] for call in worker.calls if call[0] == "finish_import")
    assert locations(finished) == ["file:///a/i", "file:///b/i"]


def test_a_failure_when_all_must_succeed_removes_every_copy():
    worker = Worker(broken={"b"})
    worker._run_import(claim(["a", "b"], must_succeed=True))
    assert [call[0] for call in worker.calls][-2:] == ["remove", "fail_import"]
    worker.registry.activate_import.assert_not_called()
