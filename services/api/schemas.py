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


TASK_STATUSES = ["pending", "processing", "success", "failure"]

# glance/api/v2/tasks.py _TASK_SCHEMA, plus Tessera's progress field
_TASK_PROPERTIES = {
    "id": _string(
        "An identifier for the task",
        pattern="^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}"
        "-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$",
    ),
    "type": _string(
        "The type of task represented by this content",
        enum=["import", "api_image_import", "location_import"],
    ),
    "status": _string("The current status of this task", enum=TASK_STATUSES),
    "input": {
        "description": "The parameters required by task, JSON blob",
        "type": ["null", "object"],
    },
    "result": {"description": "The result of current task, JSON blob", "type": ["null", "object"]},
    "owner": _string("An identifier for the owner of this task"),
    "message": _string(
        "Human-readable informative message only included when appropriate (usually on failure)"
    ),
    "image_id": _string("Image associated with the task"),
    "request_id": _string("Human-readable informative request-id"),
    "user_id": _string("User associated with the task"),
    "expires_at": {
        "description": "Datetime when this resource would be subject to removal",
        "type": ["null", "string"],
    },
    "created_at": _string("Datetime when this resource was created"),
    "updated_at": _string("Datetime when this resource was updated"),
    "bytes_done": {
        "description": "Bytes of image data the task has moved so far (Tessera)",
        "type": "integer",
    },
    "self": {"readOnly": True, "type": "string"},
    "schema": {"readOnly": True, "type": "string"},
}

TASK_SCHEMA = {"name": "task", "properties": _TASK_PROPERTIES, "additionalProperties": False}


def tasks_schema() -> dict:
    """The collection of task stubs (no input, result or message), as Glance."""
    stub = copy.deepcopy(TASK_SCHEMA)
    for key in ("input", "result", "message"):
        del stub["properties"][key]
    return collection_schema("tasks", stub)
