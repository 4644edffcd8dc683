"""``PATCH /v2/images/{id}``: the two JSON-patch media types Glance accepts, checked as
Glance checks them before the registry applies the changes.

- ``application/openstack-images-v2.1-json-patch``: ``{"op": "add", "path": "/k",
  "value": v}`` (RFC 6902 style; ``add`` of an existing property replaces it);
- ``application/openstack-images-v2.0-json-patch``: ``{"add": "/k", "value": v}`` (the
  older draft; ``add`` of an existing property is a conflict)."""

from __future__ import annotations

import re

from services.api.errors import UnsupportedMediaType
from services.api.schemas import SchemaValidator
from services.common.errors import BadRequest, Forbidden

MEDIA_TYPES = {
    "application/openstack-images-v2.0-json-patch": 4,
    "application/openstack-images-v2.1-json-patch": 10,
}
OPERATIONS = ("add", "remove", "replace")
READ_ONLY = (
    "created_at",
    "updated_at",
    "status",
    "checksum",
    "size",
    "virtual_size",
    "direct_url",
    "self",
    "file",
    "schema",
    "id",
    "os_hash_algo",
    "os_hash_value",
    "stores",
)
RESERVED = ("location", "deleted", "deleted_at")
RESERVED_PREFIX = "os_glance"
PATH_DEPTH = {"locations": {"add": 2, "remove": 2, "replace": 1}}


def check_property_name(name: str) -> None:
    """Read-only and reserved names may not be set by clients (403)."""
    if name in READ_ONLY:
        raise Forbidden(f"Attribute '{name}' is read-only.")
    if name in RESERVED or name.startswith(RESERVED_PREFIX):
        raise Forbidden(f"Attribute '{name}' is reserved.")


def _operation(raw: dict, draft: int) -> tuple[str, str]:
    if draft == 10:
        op = raw.get("op")
        if op is None:
            raise BadRequest(
                f"Unable to find `op` in JSON Schema change. It must be one of "
                f"the following: {', '.join(OPERATIONS)}."
            )
        if op not in OPERATIONS:
            raise BadRequest(
                f"Invalid operation: `{op}`. It must be one of the following: "
                f"{', '.join(OPERATIONS)}."
            )
        if "path" not in raw:
            raise BadRequest("Unable to find 'path' in JSON Schema change")
        return op, raw["path"]
    present = [k for k in OPERATIONS if k in raw]
    if len(present) != 1:
        raise BadRequest(
            'Operation objects must contain exactly one member named "add", "remove", or "replace".'
        )
    return present[0], raw[present[0]]


def _decode_pointer(pointer) -> list[str]:
    if not isinstance(pointer, str):
        raise BadRequest("The path of a change must be a string.")
    if not pointer.startswith("/"):
        raise BadRequest(f'Pointer `{pointer}` does not start with "/".')
    if re.search(r"/\s*?/", pointer[1:]):
        raise BadRequest(f'Pointer `{pointer}` contains adjacent "/".')
    if len(pointer) > 1 and pointer.endswith("/"):
        raise BadRequest(f'Pointer `{pointer}` end with "/".')
    if pointer == "/":
        raise BadRequest(f"Pointer `{pointer}` does not contains valid token.")
    if re.search("~[^01]", pointer) or pointer.endswith("~"):
        raise BadRequest(
            f'Pointer `{pointer}` contains "~" not part of a recognized escape sequence.'
        )
    return [
        part.replace("~1", "/").replace("~0", "~").strip()
        for part in pointer.lstrip("/").split("/")
    ]


def parse_changes(content_type: str, load_body, validator: SchemaValidator) -> list[dict]:
    """The checked changes of a PATCH; ``load_body`` reads the JSON body once the media
    type is known to be a JSON-patch one."""
    draft = MEDIA_TYPES.get(content_type)
    if draft is None:
        raise UnsupportedMediaType(
            f"Unsupported Content-Type {content_type or '(none)'}; "
            f"use one of {', '.join(sorted(MEDIA_TYPES))}.",
            accepted=", ".join(sorted(MEDIA_TYPES)),
        )
    body = load_body()
    if not isinstance(body, list):
        raise BadRequest("Request body must be a JSON array of operation objects.")
    changes = []
    for raw in body:
        if not isinstance(raw, dict):
            raise BadRequest("Operations must be JSON objects.")
        op, pointer = _operation(raw, draft)
        path = _decode_pointer(pointer)
        root = path[0]
        if len(path) != PATH_DEPTH.get(root, {}).get(op, 1):
            raise BadRequest(f"Invalid JSON pointer for this resource: '/{'/'.join(path)}'")
        check_property_name(root)
        if len(root) > 255:
            raise BadRequest("Custom property should not be greater than 255 characters.")
        change = {"op": op, "path": path, "json_schema_version": draft}
        if op != "remove":
            if "value" not in raw:
                raise BadRequest(f'Operation "{op}" requires a member named "value".')
            change["value"] = raw["value"]
            validator.validate({root: raw["value"]} if len(path) == 1 else {root: [raw["value"]]})
        changes.append(change)
    return changes
