"""The store service's backends with ``[DEFAULT] enabled_backends``: one backend per store
id, each configured by its own section (two file stores, a swift store), and the
single-store configuration unchanged."""

from __future__ import annotations

import pytest

from services.common.config import load_config
from services.common.errors import BadRequest
from services.store.backends.file import FileStore
from services.store.dependencies import Backends, build_backends


def conf_of(tmp_path, text: str):
    path = tmp_path / "tessera.conf"
    path.write_text(f"[DEFAULT]\ndata_dir = {tmp_path / 'data'}\n{text}")
    return load_config(["--config-file", str(path)])


def test_each_store_id_gets_its_own_backend_and_section(tmp_path):
    conf = conf_of(
        tmp_path,
        "enabled_backends = fast:file, cheap:file, far:swift, near:swift, web:http\n"
        "[glance_store]\ndefault_backend = fast\n"
        f"[fast]\nfilesystem_store_datadir = {tmp_path / 'f'}\n"
        "[cheap]\n"  # no datadir: data_dir/images/cheap
        "[far]\nswift_store_auth_address = http://keystone.invalid/v3\n"
        "swift_store_user = svc:glance\nswift_store_key = k\nswift_store_container = far\n"
        "[near]\nswift_store_auth_address = http://keystone.invalid/v3\n"
        "swift_store_user = svc:glance\nswift_store_key = k\nswift_store_container = near\n",
    )
    unusable: dict = {}
    backends = Backends(build_backends(conf, unusable), "fast", unusable)
    assert sorted(backends.by_name) == ["cheap", "far", "fast", "near", "web"]
    assert backends.named("fast").datadir == (tmp_path / "f").resolve()
    assert backends.named("cheap").datadir == (tmp_path / "data" / "images" / "cheap").resolve()
    assert backends.named("far").container == "far"
    assert {type(b) for b in backends.file_stores()} == {FileStore}
    assert len(backends.file_stores()) == 2
    with pytest.raises(BadRequest):
        backends.named("nowhere")
    # a file location is read by the file store whose directory holds it
    cheap = backends.named("cheap")
    stored = cheap.add("img", [b"data"], 4, "u1")
    assert backends.for_location(stored.location) is cheap
    assert backends.for_location(stored.location, "cheap") is cheap
    # a Swift location by the store whose container holds it
    near = backends.named("near")
    assert backends.for_location(near._location("img")) is near


def test_a_swift_store_without_credentials_is_unusable_not_fatal(tmp_path):
    conf = conf_of(
        tmp_path,
        "enabled_backends = fast:file, far:swift\n[glance_store]\ndefault_backend = fast\n",
    )
    unusable: dict = {}
    backends = Backends(build_backends(conf, unusable), "fast", unusable)
    assert "far" in unusable and "swift_store_auth_address" in unusable["far"]
    assert sorted(backends.by_name) == ["fast"]


def test_single_store_configuration_unchanged(tmp_path):
    conf = conf_of(tmp_path, "[glance_store]\nstores = file, http\ndefault_store = file\n")
    backends = build_backends(conf)
    assert sorted(backends) == ["file", "http"]
    assert backends["file"].datadir == (tmp_path / "data" / "images").resolve()
