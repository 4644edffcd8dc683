"""The cache index and fills on a real directory: what is served, what is refused, LRU
pruning, the cleaner, one filler at a time; and the cache settings."""

from __future__ import annotations

import hashlib
import os
import time
import uuid

import pytest

from services.cache.fill import Fill
from services.cache.index import ImageCache, node_id
from services.common.config import image_cache_settings, load_config, paste_flavor


@pytest.fixture
def cache(tmp_path):
    return ImageCache(tmp_path / "cache", max_size=10_000, stall_time=3600)


def record(data: bytes, **overrides) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "status": "active",
        "size": len(data),
        "checksum": hashlib.md5(data).hexdigest(),
        "os_hash_algo": "sha512",
        "os_hash_value": hashlib.sha512(data).hexdigest(),
        "locations": [{"url": "file:///x", "metadata": {}}],
        **overrides,
    }


def filled(cache, data: bytes, **overrides) -> dict:
    image = record(data, **overrides)
    fill = Fill.start(cache, image)
    fill.write(data)
    assert fill.finish()
    return image


def served(cache, image) -> bytes | None:
    fd = cache.open_for(image)
    if fd is None:
        return None
    try:
        return os.pread(fd, image["size"] + 1, 0)
    finally:
        os.close(fd)


def test_a_verified_fill_is_served_and_counted(cache):
    image = filled(cache, b"x" * 1000)
    assert served(cache, image) == b"x" * 1000
    [entry] = cache.cached_images()
    assert (entry["image_id"], entry["size"], entry["hits"]) == (image["id"], 1000, 1)
    assert not list(cache.incomplete.iterdir())


def test_nothing_is_visible_before_the_fill_finishes(cache):
    image = record(b"y" * 100)
    fill = Fill.start(cache, image)
    fill.write(b"y" * 50)
    assert served(cache, image) is None and not cache.path(image["id"]).exists()
    assert Fill.start(cache, image) is None  # one filler at a time
    fill.abort()
    assert not list(cache.incomplete.iterdir())
    assert Fill.start(cache, image) is not None


def test_a_fill_with_other_bytes_is_never_published(cache):
    image = record(b"z" * 100)
    fill = Fill.start(cache, image)
    fill.write(b"Z" * 100)
    assert not fill.finish()
    assert served(cache, image) is None
    assert (cache.invalid / image["id"]).exists()


def test_md5_alone_verifies_an_image_without_os_hash_value(cache):
    image = filled(cache, b"legacy", os_hash_value=None, os_hash_algo=None)
    assert served(cache, image) == b"legacy"


@pytest.mark.parametrize(
    "change",
    [
        {"status": "deactivated"},
        {"os_hash_value": "0" * 128},
        {"checksum": "0" * 32},
        {"size": 3},
    ],
)
def test_a_changed_record_is_not_served_and_drops_the_entry(cache, change):
    image = filled(cache, b"abcd")
    assert served(cache, {**image, **change}) is None
    assert cache.cached_images() == []


@pytest.mark.parametrize("damage", ["truncate", "rewrite", "replace"])
def test_a_damaged_file_is_not_served(cache, damage):
    image = filled(cache, b"q" * 500)
    path = cache.path(image["id"])
    time.sleep(0.02)  # a later modification time (kernel timestamps are per tick)
    if damage == "truncate":
        os.truncate(path, 100)
    elif damage == "rewrite":
        with open(path, "r+b") as handle:
            handle.write(b"Q")
    else:
        tmp = path.with_name("tmp")
        tmp.write_bytes(b"q" * 500)
        os.replace(tmp, path)
    assert served(cache, image) is None
    assert cache.cached_images() == [] and (cache.invalid / image["id"]).exists()


def test_prune_evicts_least_recently_used_first(cache):
    first, second, third = (filled(cache, bytes([n]) * 4000) for n in range(3))
    # the third fill took the cache to 12,000 > 10,000 bytes: the oldest went
    assert {e["image_id"] for e in cache.cached_images()} == {second["id"], third["id"]}
    assert served(cache, second) is not None  # second is now the most recently used
    fourth = filled(cache, b"4" * 4000)
    assert {e["image_id"] for e in cache.cached_images()} == {second["id"], fourth["id"]}
    assert cache.prune(0) == (2, 8000)
    assert served(cache, first) is None


def test_an_image_larger_than_the_cache_is_not_filled(cache):
    assert Fill.start(cache, record(b"b" * 10_001)) is None


def test_cleaner_removes_abandoned_stalled_and_orphans(cache):
    kept = filled(cache, b"kept")
    abandoned = cache.incomplete / str(uuid.uuid4())
    abandoned.write_bytes(b"half")  # nobody holds its lock: its filler died
    live = Fill.start(cache, record(b"live"))
    old_invalid = cache.invalid / "old"
    old_invalid.write_bytes(b"bad")
    os.utime(old_invalid, (time.time() - 7200,) * 2)
    orphan = cache.directory / str(uuid.uuid4())
    orphan.write_bytes(b"no row")
    os.utime(orphan, (time.time() - 7200,) * 2)
    assert cache.clean() == 3
    assert not abandoned.exists() and not old_invalid.exists() and not orphan.exists()
    assert live.path.exists() and served(cache, kept) == b"kept"
    live.abort()


def test_queue(cache):
    image = filled(cache, b"cached")
    assert not cache.queue(image["id"])  # cached already
    assert not cache.queue("../etc")
    ids = [str(uuid.uuid4()) for _ in range(2)]
    for image_id in ids:
        assert cache.queue(image_id)
    assert cache.queued_images() == ids
    assert cache.dequeue(ids[0]) and cache.dequeue_all() == 1


def test_node_id_is_kept(tmp_path):
    assert node_id(tmp_path) == node_id(tmp_path) != node_id(tmp_path / "other")


def settings_of(tmp_path, text: str):
    path = tmp_path / "t.conf"
    path.write_text(text)
    return load_config(["--config-file", str(path)])


def test_cache_settings(tmp_path):
    assert not image_cache_settings(settings_of(tmp_path, "[DEFAULT]\n")).enabled
    glance = image_cache_settings(settings_of(tmp_path, "[DEFAULT]\nimage_cache_dir = /c\n"))
    assert glance.enabled and str(glance.directory) == "/c"
    seed = image_cache_settings(
        settings_of(
            tmp_path,
            "[cache]\nenabled = true\ndirectory = /var/lib/glance/cache\n"
            "image_cache_size = 10737418240 # 10 GB cache size\n",
        )
    )
    assert seed.enabled and str(seed.directory) == "/var/lib/glance/cache"
    assert seed.max_size == 10737418240 and seed.warnings == ()
    conf = settings_of(tmp_path, "[paste_deploy]\nflavor = keystone+cachemanagement\n")
    assert paste_flavor(conf) == ("keystone", True) and image_cache_settings(conf).enabled
    assert paste_flavor(settings_of(tmp_path, "[paste_deploy]\nflavor = keystone\n")) == (
        "keystone",
        False,
    )
    driver = image_cache_settings(settings_of(tmp_path, "[DEFAULT]\nimage_cache_driver = xattr\n"))
    assert "not honoured" in driver.warnings[0]
