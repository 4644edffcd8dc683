"""The image metadata API over the real stack (gateway and registry as processes on the
real RabbitMQ), once on SQLite and once on MariaDB."""

from __future__ import annotations

import uuid

PATCH_20 = "application/openstack-images-v2.0-json-patch"


def error_of(resp, code: int) -> str:
    """The response is ``code`` with the JSON error body; returns its message."""
    assert resp.status_code == code, resp.text
    assert resp.headers["Content-Type"].startswith("application/json")
    body = resp.json()["error"]
    assert body["code"] == code and body["title"] and body["message"]
    return body["message"]


def test_versions(stack, api):
    resp = api.get("/")
    assert resp.status_code == 300
    versions = resp.json()["versions"]
    assert versions[0]["status"] == "CURRENT"
    assert {"v2.0", "v2.17"} <= {v["id"] for v in versions}
    assert api.get("/versions").status_code == 200


def test_schemas(api):
    image = api.get("/v2/schemas/image").json()
    assert image["name"] == "image"
    assert image["additionalProperties"] == {"type": "string"}
    assert "raw" in image["properties"]["disk_format"]["enum"]
    images = api.get("/v2/schemas/images").json()
    assert images["properties"]["images"]["items"]["name"] == "image"
    assert api.get("/v2/schemas/member").json()["name"] == "member"
    assert api.get("/v2/schemas/members").json()["name"] == "members"


def test_create_show_delete(api):
    image_id = str(uuid.uuid4())
    resp = api.post(
        "/v2/images",
        json={
            "id": image_id,
            "name": "cirros",
            "disk_format": "qcow2",
            "container_format": "bare",
            "tags": ["b", "a"],
            "os_distro": "cirros",
            "min_ram": 64,
        },
    )
    assert resp.status_code == 201, resp.text
    assert resp.headers["Location"].endswith(f"/v2/images/{image_id}")
    assert resp.headers["x-openstack-request-id"].startswith("req-")
    body = resp.json()
    assert body["id"] == image_id and body["status"] == "queued"
    assert body["visibility"] == "shared" and body["owner"] == api.project
    assert body["tags"] == ["a", "b"] and body["os_distro"] == "cirros"
    assert body["self"] == f"/v2/images/{image_id}"
    assert body["file"] == f"/v2/images/{image_id}/file"
    assert body["schema"] == "/v2/schemas/image"
    assert body["size"] is None and body["checksum"] is None and body["min_ram"] == 64
    assert "locations" not in body and "direct_url" not in body

    shown = api.get(f"/v2/images/{image_id}").json()
    assert shown == body

    assert api.delete(f"/v2/images/{image_id}").status_code == 204
    error_of(api.get(f"/v2/images/{image_id}"), 404)
    error_of(api.delete(f"/v2/images/{image_id}"), 404)
    # a deleted image's id cannot be used again
    error_of(api.post("/v2/images", json={"id": image_id}), 409)


def test_create_errors(api):
    assert "Malformed JSON" in error_of(api.post("/v2/images", data="{bad"), 400)
    error_of(api.post("/v2/images", data=""), 400)
    error_of(api.post("/v2/images", json=["a"]), 400)
    error_of(api.post("/v2/images", json={"name": "x" * 256}), 400)
    error_of(api.post("/v2/images", json={"name": 5}), 400)
    error_of(api.post("/v2/images", json={"id": "not-a-uuid"}), 400)
    error_of(api.post("/v2/images", json={"disk_format": "floppy"}), 400)
    error_of(api.post("/v2/images", json={"min_ram": "lots"}), 400)
    error_of(api.post("/v2/images", json={"min_ram": 10**20}), 400)
    error_of(api.post("/v2/images", json={"min_disk": -1}), 400)
    error_of(api.post("/v2/images", json={"custom": 7}), 400)
    error_of(api.post("/v2/images", json={"tags": ["x" * 256]}), 400)
    error_of(api.post("/v2/images", json={"k" * 256: "v"}), 400)
    assert "read-only" in error_of(api.post("/v2/images", json={"status": "active"}), 403)
    assert "read-only" in error_of(api.post("/v2/images", json={"self": "x"}), 403)
    assert "reserved" in error_of(api.post("/v2/images", json={"os_glance_x": "1"}), 403)
    assert "reserved" in error_of(api.post("/v2/images", json={"deleted": "1"}), 403)
    error_of(api.post("/v2/images", json={"visibility": "public"}), 403)  # needs admin
    error_of(api.post("/v2/images", json={"owner": "someone-else"}), 403)


def test_show_errors(api):
    error_of(api.get("/v2/images/not-a-uuid"), 404)
    error_of(api.get(f"/v2/images/{uuid.uuid4()}"), 404)


def test_private_images_are_invisible_to_others(api, other_api, image):
    error_of(other_api.get(f"/v2/images/{image['id']}"), 404)
    error_of(other_api.delete(f"/v2/images/{image['id']}"), 404)
    listed = other_api.get("/v2/images?limit=1000").json()["images"]
    assert image["id"] not in {i["id"] for i in listed}


def test_public_image_visible_but_not_writable(admin_api, other_api):
    public = admin_api.create(name="pub", visibility="public")
    assert other_api.get(f"/v2/images/{public['id']}").status_code == 200
    error_of(
        other_api.patch(
            f"/v2/images/{public['id']}", [{"op": "replace", "path": "/name", "value": "mine"}]
        ),
        403,
    )
    error_of(other_api.delete(f"/v2/images/{public['id']}"), 403)
    assert admin_api.delete(f"/v2/images/{public['id']}").status_code == 204


def test_protected_image_cannot_be_deleted(api):
    img = api.create(name="keep", protected=True)
    assert "protected" in error_of(api.delete(f"/v2/images/{img['id']}"), 403)
    resp = api.patch(
        f"/v2/images/{img['id']}", [{"op": "replace", "path": "/protected", "value": False}]
    )
    assert resp.status_code == 200 and resp.json()["protected"] is False
    assert api.delete(f"/v2/images/{img['id']}").status_code == 204


def test_patch_v21(api, image):
    path = f"/v2/images/{image['id']}"
    resp = api.patch(
        path,
        [
            {"op": "add", "path": "/os_distro", "value": "ubuntu"},
            {"op": "replace", "path": "/name", "value": "renamed"},
            {"op": "add", "path": "/hw~1disk", "value": "virtio"},
            {"op": "replace", "path": "/tags", "value": ["x", "y"]},
            {"op": "replace", "path": "/min_disk", "value": 3},
        ],
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["os_distro"] == "ubuntu" and body["name"] == "renamed"
    assert body["hw/disk"] == "virtio" and body["tags"] == ["x", "y"] and body["min_disk"] == 3
    assert body["updated_at"] >= image["updated_at"]
    # add of an existing property replaces it in 2.1
    resp = api.patch(path, [{"op": "add", "path": "/os_distro", "value": "debian"}])
    assert resp.json()["os_distro"] == "debian"
    resp = api.patch(path, [{"op": "remove", "path": "/os_distro"}])
    assert "os_distro" not in resp.json()
    assert api.get(path).json()["name"] == "renamed"


def test_patch_v20(api, image):
    path = f"/v2/images/{image['id']}"
    resp = api.patch(path, [{"add": "/color", "value": "blue"}], media=PATCH_20)
    assert resp.status_code == 200 and resp.json()["color"] == "blue"
    error_of(api.patch(path, [{"add": "/color", "value": "red"}], media=PATCH_20), 409)
    resp = api.patch(path, [{"replace": "/color", "value": "red"}], media=PATCH_20)
    assert resp.json()["color"] == "red"


def test_patch_errors_leave_image_unchanged(api, image):
    path = f"/v2/images/{image['id']}"
    resp = api.request("PATCH", path, json=[], headers={"Content-Type": "application/json"})
    error_of(resp, 415)
    assert "openstack-images-v2.1-json-patch" in resp.headers["Accept-Patch"]
    assert "read-only" in error_of(
        api.patch(path, [{"op": "replace", "path": "/status", "value": "active"}]), 403
    )
    assert "reserved" in error_of(
        api.patch(path, [{"op": "add", "path": "/os_glance_import", "value": "x"}]), 403
    )
    error_of(api.patch(path, [{"op": "remove", "path": "/name"}]), 403)
    error_of(api.patch(path, [{"op": "remove", "path": "/missing"}]), 409)
    error_of(api.patch(path, [{"op": "replace", "path": "/missing", "value": "x"}]), 409)
    error_of(api.patch(path, [{"op": "move", "path": "/name", "from": "/x"}]), 400)
    error_of(api.patch(path, [{"op": "add", "path": "name", "value": "x"}]), 400)
    error_of(api.patch(path, [{"op": "add", "path": "/a/b", "value": "x"}]), 400)
    error_of(api.patch(path, [{"op": "add", "path": "/name"}]), 400)
    error_of(api.patch(path, [{"op": "replace", "path": "/min_ram", "value": "x"}]), 400)
    error_of(api.patch(path, [{"op": "add", "path": "/k", "value": 1}]), 400)
    error_of(api.patch(path, {"op": "add"}), 400)
    error_of(
        api.request(
            "PATCH",
            path,
            data="[{",
            headers={"Content-Type": "application/openstack-images-v2.1-json-patch"},
        ),
        400,
    )
    # a failing change in a list applies none of them
    error_of(
        api.patch(
            path,
            [
                {"op": "replace", "path": "/name", "value": "half"},
                {"op": "remove", "path": "/missing"},
            ],
        ),
        409,
    )
    assert api.get(path).json() == image


def test_tags(api, image):
    path = f"/v2/images/{image['id']}"
    assert api.put(f"{path}/tags/alpha").status_code == 204
    assert api.put(f"{path}/tags/alpha").status_code == 204  # idempotent
    assert api.put(f"{path}/tags/beta").status_code == 204
    assert api.get(path).json()["tags"] == ["alpha", "beta"]
    assert api.delete(f"{path}/tags/alpha").status_code == 204
    assert api.get(path).json()["tags"] == ["beta"]
    error_of(api.delete(f"{path}/tags/alpha"), 404)
    error_of(api.put(f"{path}/tags/{'x' * 256}"), 400)
    error_of(api.put(f"/v2/images/{uuid.uuid4()}/tags/a"), 404)


def test_quotas(api, image):
    path = f"/v2/images/{image['id']}"
    # the test stack keeps Glance's default quota of 128 properties and tags
    too_many = [{"op": "add", "path": f"/p{i}", "value": "v"} for i in range(129)]
    assert "properties" in error_of(api.patch(path, too_many), 413)
    error_of(api.post("/v2/images", json={"tags": [f"t{i}" for i in range(129)]}), 413)
    assert api.get(path).json() == image


def test_values_too_long_for_the_database_are_400(api, image):
    """A property value longer than MariaDB's TEXT column (65535 bytes) is refused with
    400 on both databases, on create and on update, and the image is unchanged."""
    huge = "x" * 70_000
    resp = api.patch(f"/v2/images/{image['id']}", [{"op": "add", "path": "/k", "value": huge}])
    assert "65535 bytes" in error_of(resp, 400)
    assert api.get(f"/v2/images/{image['id']}").json() == image
    error_of(api.post("/v2/images", json={"k": "é" * 40_000}), 400)  # 80,000 bytes
    fits = "é" * 32_767  # 65,534 bytes
    resp = api.patch(f"/v2/images/{image['id']}", [{"op": "add", "path": "/k", "value": fits}])
    assert resp.status_code == 200, resp.text
    assert api.get(f"/v2/images/{image['id']}").json()["k"] == fits


def test_formats_change_only_while_queued(api, admin_api, image):
    """disk_format and container_format may change while the image is queued; once it
    has data (active, or deactivated) Glance answers 403 and nothing changes."""
    path = f"/v2/images/{image['id']}"
    resp = api.patch(path, [{"op": "replace", "path": "/disk_format", "value": "qcow2"}])
    assert resp.status_code == 200 and resp.json()["disk_format"] == "qcow2"
    api.patch(path, [{"op": "replace", "path": "/disk_format", "value": "raw"}])
    resp = api.put(
        f"{path}/file", data=b"x" * 1024, headers={"Content-Type": "application/octet-stream"}
    )
    assert resp.status_code == 204, resp.text
    active = api.get(path).json()
    assert active["status"] == "active"
    for name, value in (("disk_format", "qcow2"), ("container_format", "ovf")):
        for op in ("replace", "add"):
            resp = api.patch(path, [{"op": op, "path": f"/{name}", "value": value}])
            assert "can be only replaced for a queued image" in error_of(resp, 403)
    resp = api.patch(path, [{"op": "replace", "path": "/disk_format", "value": "raw"}])
    error_of(resp, 403)  # even to the value it has, as in Glance
    assert api.get(path).json() == active
    assert admin_api.post(f"{path}/actions/deactivate").status_code == 204
    resp = admin_api.patch(path, [{"op": "replace", "path": "/container_format", "value": "ovf"}])
    error_of(resp, 403)
    resp = api.patch(path, [{"op": "replace", "path": "/name", "value": "renamed"}])
    assert resp.status_code == 200 and resp.json()["container_format"] == "bare"


def test_images_path_with_a_trailing_slash_is_not_found(api, image):
    """``/v2/images/`` is an image with an empty id, not the list (as in Glance)."""
    for method in ("GET", "DELETE", "PATCH"):
        error_of(api.request(method, "/v2/images/"), 404)
    error_of(api.get(f"/v2/images/{image['id']}/"), 404)
    assert api.get(f"/v2/images/{image['id']}").status_code == 200
