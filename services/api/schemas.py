"""The JSON schemas the API serves (``/v2/schemas/...``) and validates bodies with.
Property names, types and limits are Glance's, so clients that build models from the
schema (python-glanceclient) behave as they do against Glance."""

from __future__ import annotations

import copy

from jsonschema import Draft4Validator
from jsonschema.exceptions import ValidationError

from services.common.errors import BadRequest
from services.common.states import IMAGE_STATUSES

UUID_PATTERN = (
    "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$"
)
VISIBILITIES = ["community", "public", "private", "shared"]
MEMBER_STATUSES = ["pending", "accepted", "rejected"]
MAX_INT = 2**31 - 1  # the database column's range


def _string(description, read_only=False, nullable=False, **extra):
    schema = {
        "type": ["null", "string"] if nullable else "string",
        "description": description,
        **extra,
    }
    if read_only:
        schema["readOnly"] = True
    return schema


def image_properties(disk_formats: list[str], container_formats: list[str]) -> dict:
    return {
        "id": _string("An identifier for the image", pattern=UUID_PATTERN),
        "name": _string("Descriptive name for the image", nullable=True, maxLength=255),
        "status": _string("Status of the image", read_only=True, enum=list(IMAGE_STATUSES)),
        "visibility": _string("Scope of image accessibility", enum=VISIBILITIES),
        "protected": {"type": "boolean", "description": "If true, image will not be deletable."},
        "os_hidden": {
            "type": "boolean",
            "description": "If true, image will not appear in default image list response.",
        },
        "checksum": _string(
            "md5 hash of image contents.", read_only=True, nullable=True, maxLength=32
        ),
        "os_hash_algo": _string(
            "Algorithm to calculate the os_hash_value", read_only=True, nullable=True, maxLength=64
        ),
        "os_hash_value": _string(
            "Hexdigest of the image contents using the algorithm specified by the os_hash_algo",
            read_only=True,
            nullable=True,
            maxLength=128,
        ),
        "owner": _string("Owner of the image", nullable=True, maxLength=255),
        "size": {
            "type": ["null", "integer"],
            "readOnly": True,
            "description": "Size of image file in bytes",
        },
        "virtual_size": {
            "type": ["null", "integer"],
            "readOnly": True,
            "description": "Virtual size of image in bytes",
        },
        "container_format": _string(
            "Format of the container", nullable=True, enum=[None, *container_formats]
        ),
        "disk_format": _string("Format of the disk", nullable=True, enum=[None, *disk_formats]),
        "created_at": _string("Date and time of image registration", read_only=True),
        "updated_at": _string("Date and time of the last image modification", read_only=True),
        "tags": {
            "type": "array",
            "description": "List of strings related to the image",
            "items": {"type": "string", "maxLength": 255},
        },
        "direct_url": _string(
            "URL to access the image file kept in external store", read_only=True
        ),
        "min_ram": {
            "type": "integer",
            "minimum": 0,
            "maximum": MAX_INT,
            "description": "Amount of ram (in MB) required to boot image.",
        },
        "min_disk": {
            "type": "integer",
            "minimum": 0,
            "maximum": MAX_INT,
            "description": "Amount of disk space (in GB) required to boot image.",
        },
        "self": _string("An image self url", read_only=True),
        "file": _string("An image file url", read_only=True),
        "stores": _string(
            "Store in which image data resides. Only present when the operator "
            "has enabled multiple stores. May be a comma-separated list of "
            "store identifiers.",
            read_only=True,
        ),
        "schema": _string("An image schema url", read_only=True),
        "locations": {
            "type": "array",
            "description": "A set of URLs to access the image file kept in external store",
            "items": {
                "type": "object",
                "properties": {
                    "url": {"type": "string", "maxLength": 255},
                    "metadata": {"type": "object"},
                    "validation_data": {
                        "type": "object",
                        "writeOnly": True,
                        "additionalProperties": False,
                        "description": "Values to be used to populate the corresponding "
                        "image properties. If the image status is not "
                        "'queued', values must exactly match those already "
                        "contained in the image properties.",
                        "properties": {
                            "checksum": {"type": "string", "minLength": 32, "maxLength": 32},
                            "os_hash_algo": {"type": "string", "maxLength": 64},
                            "os_hash_value": {"type": "string", "maxLength": 128},
                        },
                        "required": ["os_hash_algo", "os_hash_value"],
                    },
                },
                "required": ["url", "metadata"],
            },
        },
    }


def image_schema(conf) -> dict:
    return {
        "name": "image",
        "properties": image_properties(
            conf.image_format.disk_formats, conf.image_format.container_formats
        ),
        "additionalProperties": {"type": "string"},
        "links": [
            {"rel": "self", "href": "{self}"},
            {"rel": "enclosure", "href": "{file}"},
            {"rel": "describedby", "href": "{schema}"},
        ],
    }


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


class SchemaValidator:
    """Validates bodies against a schema with Glance's error text."""

    def __init__(self, schema: dict):
        self.name = schema["name"]
        self._validator = Draft4Validator(schema)

    def validate(self, obj) -> None:
        try:
            self._validator.validate(obj)
        except ValidationError as exc:
            raise BadRequest(
                f"Provided object does not match schema '{self.name}': {exc.message}"
            ) from None
