"""``PATCH /v2/images/{id}``: the two JSON-patch media types Glance accepts, checked as
Glance checks them before the registry applies the changes.

- ``application/openstack-images-v2.1-json-patch``: ``{"op": "add", "path": "/k",
  "value": v}`` (RFC 6902 style; ``add`` of an existing property replaces it);
- ``application/openstack-images-v2.0-json-patch``: ``{"add": "/k", "value": v}`` (the
  older draft; ``add`` of an existing property is a conflict)."""

from __future__ import annotations

import re

from services.api.errors import UnsupportedMediaType
from services.common.contracts import OPERATIONS, ImageChange
from services.common.errors import BadRequest
from services.common.image_schema import SchemaValidator

MEDIA_TYPES = {
    "application/openstack-images-v2.0-json-patch": 4,
    "application/openstack-images-v2.1-json-patch": 10,
}


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


def parse_changes(content_type: str, load_body, validator: SchemaValidator) -> list[ImageChange]:
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
        if op != "remove" and "value" not in raw:
            raise BadRequest(f'Operation "{op}" requires a member named "value".')
        change = ImageChange(op, tuple(_decode_pointer(pointer)), raw.get("value"), draft)
        change.check(validator)
        changes.append(change)
    return changes
