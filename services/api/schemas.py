"""The JSON schemas the API serves (``/v2/schemas/...``) besides the image schema
(services/common/image_schema.py): collections and members, with Glance's names."""

from __future__ import annotations

import copy

from services.common.image_attributes import UUID_PATTERN

MEMBER_STATUSES = ["pending", "accepted", "rejected"]


def _string(description, read_only=False, **extra):
    schema = {"type": "string", "description": description, **extra}
    if read_only:
        schema["readOnly"] = True
    return schema


def collection_schema(name: str, item_schema: dict) -> dict:
    return {
        "name": name,
        "properties": {
            name: {"type": "array", "items": copy.deepcopy(item_schema)},
            "schema": {"type": "string"},
            "first": {"type": "string"},
            "next": {"type": "string"},
        },
        "links": [
            {"rel": "first", "href": "{first}"},
            {"rel": "next", "href": "{next}"},
            {"rel": "describedby", "href": "{schema}"},
        ],
    }


MEMBER_SCHEMA = {
    "name": "member",
    "properties": {
        "member_id": _string("An identifier for the image member (tenantId)"),
        "image_id": _string("An identifier for the image", pattern=UUID_PATTERN),
        "created_at": _string("Date and time of image member creation"),
        "updated_at": _string("Date and time of last modification of image member"),
        "status": _string("The status of this image member", enum=MEMBER_STATUSES),
        "schema": _string("An image member schema url", read_only=True),
    },
}


def members_schema() -> dict:
    schema = collection_schema("members", MEMBER_SCHEMA)
    del schema["properties"]["first"], schema["properties"]["next"]
    schema["links"] = [
        {"rel": "self", "href": "{self}"},
        {"rel": "describedby", "href": "{schema}"},
    ]
    return schema
