"""Import plugins (inject_image_metadata, image_conversion) and the Image API 2.17
location API on a real stack (SQLite and MariaDB), with a web server on loopback that
this stack's [import_filtering_opts] allows."""

from __future__ import annotations

import hashlib
import subprocess
import uuid

import pytest

from tests.conftest import Api, random_image
from tests.integration.test_image_data import MiB
from tests.integration.test_images_api import error_of
from tests.integration.test_import import (
    OCTETS,
    allowing,
    new_image,
    serve,
    settled,
    tasks_of,
    web,
)
from tests.stack import Stack

__all__ = ["web"]  # the module's loopback web server fixture


@pytest.fixture(scope="module", params=["sqlite", "mysql"])
def plugged(request, web, tmp_path_factory):
    stack = Stack(
        tmp_path_factory.mktemp(f"plugins-{request.param}"),
        mysql=request.param == "mysql",
        sections={
            "image_import_opts": {
                "image_import_plugins": "inject_image_metadata,image_conversion,no_such_plugin"
            },
            "inject_metadata_properties": {"inject": "injected:yes,hw_note:from-plugin"},
            "image_conversion": {"output_format": "raw"},
            "glance_store": {"stores": "file,http"},
            "import_filtering_opts": allowing(web),
        },
    )
    try:
        stack.start()
        yield stack
    finally:
        stack.cleanup()


def project_api(stack, roles="member,reader") -> Api:
    return Api(stack.url, project=f"plg-{uuid.uuid4().hex[:8]}", roles=roles)


def glance_direct(api, image_id: str, data: bytes) -> dict:
    resp = api.put(f"/v2/images/{image_id}/stage", data=data, headers=OCTETS)
    assert resp.status_code == 204, resp.text
    resp = api.post(f"/v2/images/{image_id}/import", json={"method": {"name": "glance-direct"}})
    assert resp.status_code == 202, resp.text
    return settled(api, image_id)


def test_unknown_plugin_warned(plugged):
    assert "no_such_plugin is not an import plugin Tessera runs" in plugged.logs()


def test_inject_image_metadata(plugged):
    member = project_api(plugged)
    image = glance_direct(member, new_image(member), random_image(4096))
    assert image["status"] == "active"
    assert (image["injected"], image["hw_note"]) == ("yes", "from-plugin")
    admin = project_api(plugged, roles="admin,member,reader")
    image = glance_direct(admin, new_image(admin), random_image(4096))
    assert image["status"] == "active"
    assert "injected" not in image and "hw_note" not in image


def test_image_conversion_qcow2_to_raw(plugged, tmp_path):
    raw = tmp_path / "in.raw"
    raw.write_bytes(random_image(MiB) + bytes(MiB))
    qcow2, expected = tmp_path / "in.qcow2", tmp_path / "expected.raw"
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", raw, qcow2], check=True)
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", qcow2, expected], check=True)
    api = project_api(plugged)
    image_id = new_image(api, disk_format="qcow2")
    image = glance_direct(api, image_id, qcow2.read_bytes())
    assert image["status"] == "active", image
    want = expected.read_bytes()
    assert image["disk_format"] == "raw"
    assert image["size"] == image["virtual_size"] == len(want)
    assert image["os_hash_value"] == hashlib.sha512(want).hexdigest()
    assert api.get(f"/v2/images/{image_id}/file").content == want
    assert not list((plugged.workdir / "data" / "staging").glob(f"{image_id}*"))


def locations_url(image_id: str) -> str:
    return f"/v2/images/{image_id}/locations"


def test_add_location(plugged, web):
    data = random_image(2 * MiB + 3)
    url = f"{web}/data/{serve(data)}"
    api = project_api(plugged)
    image_id = new_image(api)
    validation = {"os_hash_algo": "sha512", "os_hash_value": hashlib.sha512(data).hexdigest()}
    resp = api.post(locations_url(image_id), json={"url": url, "validation_data": validation})
    assert resp.status_code == 202, resp.text
    image = settled(api, image_id)
    assert image["status"] == "active"
    assert image["size"] == len(data)
    assert image["checksum"] == hashlib.md5(data).hexdigest()
    assert image["os_hash_value"] == validation["os_hash_value"]
    (task,) = tasks_of(api, image_id)
    assert (task["type"], task["status"]) == ("location_import", "success")
    # GET locations: service role only
    error_of(api.get(locations_url(image_id)), 403)
    # a service (nova, cinder) acts with the user's token and its own service role
    project = api.session.headers["X-Project-Id"]
    service = Api(plugged.url, project=project, roles="reader,service")
    resp = service.get(locations_url(image_id))
    assert resp.status_code == 200, resp.text
    assert resp.json() == [{"url": url, "metadata": {}}]
    # only a queued image takes a location
    error_of(api.post(locations_url(image_id), json={"url": url}), 409)


def test_add_location_validation_mismatch(plugged, web):
    data = random_image(MiB)
    api = project_api(plugged)
    image_id = new_image(api)
    wrong = {"os_hash_value": hashlib.sha512(b"other").hexdigest()}
    url = f"{web}/data/{serve(data)}"
    resp = api.post(locations_url(image_id), json={"url": url, "validation_data": wrong})
    assert resp.status_code == 202, resp.text
    image = settled(api, image_id)
    assert image["status"] == "queued" and image["checksum"] is None
    (task,) = tasks_of(api, image_id)
    assert task["status"] == "failure" and "not matched" in task["message"], task


def test_add_location_refused(plugged, web):
    api = project_api(plugged)
    image_id = new_image(api)
    for url in ("http://169.254.169.254/latest/meta-data", "file:///etc/passwd"):
        message = error_of(api.post(locations_url(image_id), json={"url": url}), 400)
        assert "does not pass filtering" in message
    error_of(api.post(locations_url(image_id), json={}), 400)
    bad = {"url": f"{web}/data/x", "validation_data": {"os_hash_value": "zz"}}
    error_of(api.post(locations_url(image_id), json=bad), 400)
    other = project_api(plugged)
    error_of(other.post(locations_url(image_id), json={"url": f"{web}/data/x"}), 404)
    assert api.get(f"/v2/images/{image_id}").json()["status"] == "queued"
