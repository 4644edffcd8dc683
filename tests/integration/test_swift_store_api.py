"""Images uploaded and downloaded through the API with Swift as the default store:
segmented large objects, hashes, ranges and deletion, against a real Swift."""

from __future__ import annotations

import hashlib
import os

import pytest
from swiftclient.client import Connection

from tests.conftest import Api, random_image
from tests.integration.test_image_data import MiB, upload, wait_for
from tests.stack import Stack

CONTAINER = "tessera-api-images"


@pytest.fixture(scope="module")
def swift_stack(swift, tmp_path_factory):
    """A stack storing images in Swift (v1 auth), segmenting anything over 2 MiB."""
    stack = Stack(
        tmp_path_factory.mktemp("swift-stack"),
        sections={
            "glance_store": swift.glance_store_options(
                CONTAINER, swift_store_large_object_size=2, swift_store_large_object_chunk_size=1
            )
        },
    ).start()
    yield stack
    stack.cleanup()


@pytest.fixture(scope="module")
def objects(swift):
    conn = Connection(swift.auth_url, swift.user, swift.key, auth_version="1")

    def names(prefix: str) -> list[str]:
        try:
            return [
                o["name"]
                for o in conn.get_container(CONTAINER, prefix=prefix, full_listing=True)[1]
            ]
        except Exception:  # noqa: BLE001 - no container yet: no objects
            return []

    yield names
    conn.close()


@pytest.mark.parametrize("size", [0, 100, 2 * MiB, 5 * MiB + 7])
def test_swift_roundtrip(swift_stack, objects, size):
    api = Api(swift_stack.url, project=f"sw-{os.urandom(4).hex()}")
    image = api.create(name="in-swift", disk_format="raw", container_format="bare")
    data = random_image(size)
    resp = upload(api, image["id"], data)
    assert resp.status_code == 204, resp.text
    shown = api.get(f"/v2/images/{image['id']}").json()
    assert shown["status"] == "active" and shown["size"] == size
    assert shown["checksum"] == hashlib.md5(data).hexdigest()
    assert shown["os_hash_value"] == hashlib.sha512(data).hexdigest()
    stored = objects(image["id"])
    assert image["id"] in stored
    if size > 2 * MiB:  # a static large object of 1 MiB segments
        assert len(stored) == 1 + -(-size // MiB)
    assert api.get(f"/v2/images/{image['id']}/file").content == data
    if size:
        part = api.get(f"/v2/images/{image['id']}/file", headers={"Range": "bytes=1-"})
        assert part.status_code == 206 and part.content == data[1:]
    assert api.delete(f"/v2/images/{image['id']}").status_code == 204
    wait_for(lambda: objects(image["id"]) == [], what="the objects to be deleted")


def test_failed_swift_upload_leaves_no_segments(swift_stack, objects):
    api = Api(swift_stack.url, project=f"sw-{os.urandom(4).hex()}")
    image = api.create(name="short", disk_format="raw", container_format="bare")
    resp = upload(
        api, image["id"], random_image(3 * MiB), **{"x-openstack-image-size": str(3 * MiB)}
    )
    assert resp.status_code == 204
    other = api.create(name="liar", disk_format="qcow2", container_format="bare")
    assert upload(api, other["id"], random_image(3 * MiB)).status_code == 415
    wait_for(lambda: objects(other["id"]) == [], what="no segments left")
    assert api.get(f"/v2/images/{other['id']}").json()["status"] == "queued"
