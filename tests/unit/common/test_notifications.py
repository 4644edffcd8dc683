"""Glance's notification payloads and the disabled_notifications rule, without I/O."""

from __future__ import annotations

from services.common.notifications import (
    deleted_image_payload,
    image_payload,
    is_disabled,
    member_payload,
    upload_payload,
)

RECORD = {
    "id": "5f4dcfb3-8c52-4a0d-9a8d-6a4f4ee6c0b1",
    "name": "cirros",
    "status": "active",
    "visibility": "public",
    "protected": False,
    "os_hidden": False,
    "checksum": "c4ca4238a0b923820dcc509a6f75849b",
    "os_hash_algo": "sha512",
    "os_hash_value": "ab" * 64,
    "owner": "p1",
    "size": 1,
    "virtual_size": None,
    "min_disk": 0,
    "min_ram": 0,
    "disk_format": "raw",
    "container_format": "bare",
    "created_at": "2026-01-01T00:00:00Z",
    "updated_at": "2026-01-01T00:00:01Z",
    "tags": ["t"],
    "properties": {"os_glance_importing_to_stores": "a,b", "hw": "x"},
    "locations": [{"url": "file:///secret", "metadata": {}}],
}


def test_image_payload_is_glances():
    payload = image_payload(RECORD)
    assert set(payload) == {
        "id", "name", "status", "created_at", "updated_at", "min_disk", "min_ram",
        "protected", "checksum", "owner", "disk_format", "container_format", "size",
        "virtual_size", "is_public", "visibility", "properties", "tags", "deleted",
        "deleted_at",
    }  # fmt: skip
    assert payload["is_public"] is True and payload["deleted"] is False
    assert "file:///secret" not in repr(payload)


def test_upload_and_delete_payloads():
    uploaded = upload_payload(RECORD)
    assert uploaded["os_glance_importing_to_stores"] == ["a", "b"]
    assert uploaded["os_glance_failed_import"] == []
    deleted = deleted_image_payload(RECORD)
    assert deleted["deleted"] is True and deleted["status"] == "deleted"
    assert deleted["deleted_at"].endswith("Z")


def test_member_payload():
    member = {
        "image_id": "i",
        "member_id": "m",
        "status": "pending",
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
        "schema": "/v2/schemas/member",
    }
    assert member_payload(member) == {
        "image_id": "i",
        "member_id": "m",
        "status": "pending",
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
        "deleted": False,
        "deleted_at": None,
    }
    assert member_payload(member, deleted=True)["deleted"] is True


def test_disabled_notifications():
    assert is_disabled("image.update", ["image.update"])
    assert not is_disabled("image.upload", ["image.update"])
    assert is_disabled("image.member.create", ["image"])
    assert is_disabled("image.member.create", ["image.member"])
    assert not is_disabled("image.create", ["image.member"])
    assert not is_disabled("task.create", ["image"])
    assert not is_disabled("image.create", ["imag"])
    assert not is_disabled("image.create", [])
