"""The location_import task's end on a store replica (services/store/location_import.py):
validation_data checks and [DEFAULT] do_secure_hash off."""

from __future__ import annotations

from types import SimpleNamespace
from unittest import mock

from services.store import location_import

RESULT = {"size": 3, "checksum": "c" * 32, "os_hash_algo": "sha512", "os_hash_value": "a" * 128}
CLAIM = {"task_id": "t", "image_id": "i", "uri": "http://h/x"}


def worker(secure: bool):
    return SimpleNamespace(conf=SimpleNamespace(do_secure_hash=secure), registry=mock.Mock())


def run(secure: bool, validation: dict):
    w = worker(secure)
    with mock.patch.object(location_import, "read_location", return_value=dict(RESULT)) as read:
        location_import.run_location_import(w, {**CLAIM, "validation_data": validation}, [])
    return w.registry, read


def test_matching_validation_data_activates():
    registry, read = run(True, {"os_hash_algo": "sha512", "os_hash_value": "a" * 128})
    read.assert_called_once()
    registry.fail_import.assert_not_called()
    (task_id, result), _ = registry.finish_import.call_args
    assert task_id == "t" and result["location"] == "http://h/x" and result["size"] == 3


def test_mismatch_fails_the_task():
    for wrong in ({"os_hash_value": "b" * 128}, {"checksum": "d" * 32}, {"os_hash_algo": "md5"}):
        registry, _ = run(True, wrong)
        registry.finish_import.assert_not_called()
        (task_id, reason), _ = registry.fail_import.call_args
        assert task_id == "t" and "not matched" in reason


def test_without_secure_hash_nothing_is_read():
    given = {"os_hash_algo": "sha512", "os_hash_value": "e" * 128, "checksum": "f" * 32}
    registry, read = run(False, given)
    read.assert_not_called()
    (_, result), _ = registry.finish_import.call_args
    assert result["size"] is None
    assert (result["os_hash_value"], result["checksum"]) == (given["os_hash_value"], "f" * 32)
