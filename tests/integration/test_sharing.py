"""Members (sharing), deactivation, usage and the role rules, through the API with
development auth (project and roles from headers)."""

from __future__ import annotations

import os

import pytest

from tests.conftest import Api
from tests.integration.test_image_data import upload
from tests.integration.test_images_api import error_of


@pytest.fixture
def reader_api(stack, api):
    """A reader of the same project as ``api``."""
    return Api(stack.url, project=api.project, roles="reader")


def listed(api, **params) -> set[str]:
    query = "&".join(f"{k}={v}" for k, v in {"limit": 1000, **params}.items())
    return {i["id"] for i in api.get(f"/v2/images?{query}").json()["images"]}


def test_sharing_lifecycle(api, other_api):
    image = api.create(
        name="shared", visibility="shared", disk_format="raw", container_format="bare"
    )
    upload(api, image["id"], b"shared bytes")
    path = f"/v2/images/{image['id']}/members"
    assert other_api.get(f"/v2/images/{image['id']}").status_code == 404

    resp = api.post(path, json={"member": other_api.project})
    assert resp.status_code == 200, resp.text
    member = resp.json()
    assert member["status"] == "pending" and member["member_id"] == other_api.project
    assert member["image_id"] == image["id"] and member["schema"] == "/v2/schemas/member"
    error_of(api.post(path, json={"member": other_api.project}), 409)

    # pending: visible to the member directly and with member_status, not in its list
    assert other_api.get(f"/v2/images/{image['id']}").status_code == 200
    assert image["id"] not in listed(other_api)
    assert image["id"] in listed(other_api, member_status="pending")
    assert image["id"] in listed(other_api, visibility="shared", member_status="all")

    # only the member answers for itself
    error_of(api.put(f"{path}/{other_api.project}", json={"status": "accepted"}), 403)
    resp = other_api.put(f"{path}/{other_api.project}", json={"status": "accepted"})
    assert resp.status_code == 200 and resp.json()["status"] == "accepted"
    assert image["id"] in listed(other_api)
    assert image["id"] in listed(other_api, visibility="shared")
    assert other_api.get(f"/v2/images/{image['id']}/file").content == b"shared bytes"

    # the member sees only itself; the owner sees all
    assert [m["member_id"] for m in other_api.get(path).json()["members"]] == [other_api.project]
    assert api.get(f"{path}/{other_api.project}").json()["status"] == "accepted"

    # the member can change nothing else
    error_of(
        other_api.patch(
            f"/v2/images/{image['id']}", [{"op": "replace", "path": "/name", "value": "x"}]
        ),
        403,
    )
    error_of(other_api.delete(f"/v2/images/{image['id']}"), 403)
    error_of(other_api.post(path, json={"member": "third-project"}), 403)

    resp = other_api.put(f"{path}/{other_api.project}", json={"status": "rejected"})
    assert resp.json()["status"] == "rejected"
    assert image["id"] not in listed(other_api)

    assert api.delete(f"{path}/{other_api.project}").status_code == 204
    assert other_api.get(f"/v2/images/{image['id']}").status_code == 404
    assert api.get(path).json()["members"] == []


def test_member_errors(api, other_api, image):
    path = f"/v2/images/{image['id']}/members"
    api.patch(
        f"/v2/images/{image['id']}", [{"op": "replace", "path": "/visibility", "value": "private"}]
    )
    assert "shared" in error_of(api.post(path, json={"member": other_api.project}), 403)
    api.patch(
        f"/v2/images/{image['id']}", [{"op": "replace", "path": "/visibility", "value": "shared"}]
    )
    error_of(api.post(path, json={}), 400)
    error_of(api.post(path, json={"member": 5}), 400)
    error_of(api.post(path, data="{bad"), 400)
    error_of(api.get(f"{path}/{other_api.project}"), 404)
    error_of(api.delete(f"{path}/{other_api.project}"), 404)
    api.post(path, json={"member": other_api.project})
    error_of(other_api.put(f"{path}/{other_api.project}", json={"status": "maybe"}), 400)
    error_of(other_api.get(f"{path}/someone-else"), 404)
    error_of(other_api.delete(f"{path}/{other_api.project}"), 403)


def test_member_quota(stack, api):
    image = api.create(name="popular", visibility="shared")
    path = f"/v2/images/{image['id']}/members"
    for i in range(128):
        assert api.post(path, json={"member": f"p{i}"}).status_code == 200
    error_of(api.post(path, json={"member": "one-too-many"}), 413)


def test_reader_cannot_write(api, reader_api, image):
    assert reader_api.get(f"/v2/images/{image['id']}").status_code == 200
    assert image["id"] in listed(reader_api)
    error_of(reader_api.post("/v2/images", json={"name": "no"}), 403)
    error_of(
        reader_api.patch(
            f"/v2/images/{image['id']}", [{"op": "replace", "path": "/name", "value": "no"}]
        ),
        403,
    )
    error_of(reader_api.delete(f"/v2/images/{image['id']}"), 403)
    error_of(upload(reader_api, image["id"], b"x"), 403)
    error_of(reader_api.put(f"/v2/images/{image['id']}/tags/no"), 403)
    upload(api, image["id"], b"data")
    error_of(reader_api.get(f"/v2/images/{image['id']}/file"), 403)


def test_deactivate_and_reactivate(api, admin_api, reader_api, other_api, image):
    """Glance 33's defaults: admin or a member of the owning project (not a reader, not
    another project); any status but active/deactivated is a 403, as in Glance."""
    path = f"/v2/images/{image['id']}"
    assert "queued" in error_of(admin_api.post(f"{path}/actions/deactivate"), 403)
    assert "queued" in error_of(api.post(f"{path}/actions/reactivate"), 403)
    upload(api, image["id"], b"payload")
    error_of(reader_api.post(f"{path}/actions/deactivate"), 403)
    error_of(other_api.post(f"{path}/actions/deactivate"), 404)  # cannot see it
    assert api.get(path).json()["status"] == "active"
    assert api.post(f"{path}/actions/deactivate").status_code == 204  # the owner's member
    assert api.post(f"{path}/actions/deactivate").status_code == 204  # idempotent
    assert api.get(path).json()["status"] == "deactivated"
    assert "deactivated" in error_of(api.get(f"{path}/file"), 403)
    assert admin_api.get(f"{path}/file").content == b"payload"
    error_of(reader_api.post(f"{path}/actions/reactivate"), 403)
    assert api.get(path).json()["status"] == "deactivated"
    assert api.post(f"{path}/actions/reactivate").status_code == 204
    assert api.post(f"{path}/actions/reactivate").status_code == 204  # idempotent
    assert api.get(f"{path}/file").content == b"payload"
    assert admin_api.post(f"{path}/actions/deactivate").status_code == 204
    assert admin_api.post(f"{path}/actions/reactivate").status_code == 204


def test_community_and_public_visibility(api, other_api, admin_api):
    community = api.create(name="community", visibility="community")
    assert other_api.get(f"/v2/images/{community['id']}").status_code == 200
    assert community["id"] not in listed(other_api)
    assert community["id"] in listed(other_api, visibility="community")
    error_of(
        api.patch(
            f"/v2/images/{community['id']}",
            [{"op": "replace", "path": "/visibility", "value": "public"}],
        ),
        403,
    )
    resp = admin_api.patch(
        f"/v2/images/{community['id']}",
        [{"op": "replace", "path": "/visibility", "value": "public"}],
    )
    assert resp.json()["visibility"] == "public"
    assert community["id"] in listed(other_api)


def test_owner_change_needs_admin(api, admin_api, image):
    error_of(
        api.patch(
            f"/v2/images/{image['id']}", [{"op": "replace", "path": "/owner", "value": "thief"}]
        ),
        403,
    )
    resp = admin_api.patch(
        f"/v2/images/{image['id']}", [{"op": "replace", "path": "/owner", "value": "new-owner"}]
    )
    assert resp.status_code == 200 and resp.json()["owner"] == "new-owner"
    assert api.get(f"/v2/images/{image['id']}").status_code == 404


def test_usage(stack):
    api = Api(stack.url, project=f"usage-{os.urandom(4).hex()}")
    for size in (10, 20):
        image = api.create(name="u", disk_format="raw", container_format="bare")
        upload(api, image["id"], b"x" * size)
    usage = api.get("/v2/info/usage").json()["usage"]
    assert usage["image_size_total"] == {"limit": -1, "usage": 30}
    assert usage["image_count_total"]["usage"] == 2
