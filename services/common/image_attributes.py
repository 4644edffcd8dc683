"""Every fact about an image's attributes, in one table: which exist, which a client may
set (always, only on create, only while the image is queued or importing, or through
the locations rules), which are read-only or reserved, their JSON schema and limits,
and whether the images table stores them as columns.

The image schema the API serves, the gateway's create and patch checks, the registry's
own checks of what reaches it, and both views (the registry's records and the API's
image bodies) are all made from this table. Names, types and limits are Glance 33's
(``glance/api/v2/images.py get_base_properties``, ``glance/domain``), so clients that
build models from the schema (python-glanceclient) behave as they do against Glance."""

from __future__ import annotations

import re
from dataclasses import dataclass

from services.common.errors import BadRequest, Forbidden
from services.common.states import IMAGE_STATUSES

# Glance's pattern, as the schema serves it; its "$" also matches before a final newline,
# so ids are checked with UUID_RE.fullmatch as well.
UUID_PATTERN = (
    "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$"
)
UUID_RE = re.compile(UUID_PATTERN[1:-1])
VISIBILITIES = ("community", "public", "private", "shared")
MAX_INT = 2**31 - 1  # the database column's range (min_ram, min_disk)
NAME_MAX = 255  # names, tags, property keys, owner
PROPERTY_VALUE_MAX_BYTES = 65535  # a TEXT column on MySQL; SQLite gives the same answer

# How a client may write an attribute.
SETTABLE = "settable"  # on create and by PATCH
CREATE_ONLY = "create_only"  # chosen on create (id), read-only afterwards
LOCATIONS = "locations"  # only by PATCH /locations, under the location rules and policies
READ_ONLY = "read_only"  # computed by Tessera; 403 when a client tries

# Names no client may use as attributes or properties (403 "reserved"), and the prefix
# Glance keeps for its own bookkeeping properties.
RESERVED_NAMES = ("location", "deleted", "deleted_at")
RESERVED_PREFIX = "os_glance"
# Bookkeeping properties that never appear in an API response.
HIDDEN_PROPERTIES = ("os_glance_stage_host", "os_glance_hash_op_host")
# While an image is in one of these statuses its formats may still change.
FORMATS_CHANGEABLE_IN = ("queued", "importing")


@dataclass(frozen=True)
class Attribute:
    name: str
    schema: dict
    access: str = READ_ONLY
    column: bool = True  # a column of the images table (else a child table or derived)
    frozen_after_queued: bool = False  # 403 once the image left queued/importing
    enum_option: str | None = None  # the [image_format] option listing its values


def _string(description: str, nullable: bool = False, **extra) -> dict:
    return {
        "type": ["null", "string"] if nullable else "string",
        "description": description,
        **extra,
    }


def _read_only(schema: dict) -> dict:
    return {**schema, "readOnly": True}


_LOCATION_ITEM = {
    "type": "object",
    "properties": {
        "url": {"type": "string", "maxLength": 255},
        "metadata": {"type": "object"},
        "validation_data": {
            "type": "object",
            "writeOnly": True,
            "additionalProperties": False,
            "description": "Values to be used to populate the corresponding image properties. "
            "If the image status is not 'queued', values must exactly match those already "
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
}

# In the order of Glance's image bodies.
ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute(
        "name",
        _string("Descriptive name for the image", nullable=True, maxLength=NAME_MAX),
        SETTABLE,
    ),
    Attribute(
        "disk_format",
        _string("Format of the disk", nullable=True),
        SETTABLE,
        frozen_after_queued=True,
        enum_option="disk_formats",
    ),
    Attribute(
        "container_format",
        _string("Format of the container", nullable=True),
        SETTABLE,
        frozen_after_queued=True,
        enum_option="container_formats",
    ),
    Attribute(
        "visibility",
        _string("Scope of image accessibility", enum=list(VISIBILITIES)),
        SETTABLE,
    ),
    Attribute(
        "size",
        _read_only({"type": ["null", "integer"], "description": "Size of image file in bytes"}),
    ),
    Attribute(
        "virtual_size",
        _read_only({"type": ["null", "integer"], "description": "Virtual size of image in bytes"}),
    ),
    Attribute("status", _read_only(_string("Status of the image", enum=list(IMAGE_STATUSES)))),
    Attribute(
        "checksum",
        _read_only(_string("md5 hash of image contents.", nullable=True, maxLength=32)),
    ),
    Attribute(
        "protected",
        {"type": "boolean", "description": "If true, image will not be deletable."},
        SETTABLE,
    ),
    Attribute(
        "min_ram",
        {
            "type": "integer",
            "minimum": 0,
            "maximum": MAX_INT,
            "description": "Amount of ram (in MB) required to boot image.",
        },
        SETTABLE,
    ),
    Attribute(
        "min_disk",
        {
            "type": "integer",
            "minimum": 0,
            "maximum": MAX_INT,
            "description": "Amount of disk space (in GB) required to boot image.",
        },
        SETTABLE,
    ),
    Attribute("owner", _string("Owner of the image", nullable=True, maxLength=NAME_MAX), SETTABLE),
    Attribute(
        "os_hidden",
        {
            "type": "boolean",
            "description": "If true, image will not appear in default image list response.",
        },
        SETTABLE,
    ),
    Attribute(
        "os_hash_algo",
        _read_only(
            _string("Algorithm to calculate the os_hash_value", nullable=True, maxLength=64)
        ),
    ),
    Attribute(
        "os_hash_value",
        _read_only(
            _string(
                "Hexdigest of the image contents using the algorithm specified by the os_hash_algo",
                nullable=True,
                maxLength=128,
            )
        ),
    ),
    Attribute("id", _string("An identifier for the image", pattern=UUID_PATTERN), CREATE_ONLY),
    Attribute("created_at", _read_only(_string("Date and time of image registration"))),
    Attribute("updated_at", _read_only(_string("Date and time of the last image modification"))),
    Attribute(
        "tags",
        {
            "type": "array",
            "description": "List of strings related to the image",
            "items": {"type": "string", "maxLength": NAME_MAX},
        },
        SETTABLE,
        column=False,
    ),
    Attribute(
        "locations",
        {
            "type": "array",
            "description": "A set of URLs to access the image file kept in external store",
            "items": _LOCATION_ITEM,
        },
        LOCATIONS,
        column=False,
    ),
    Attribute(
        "direct_url",
        _read_only(_string("URL to access the image file kept in external store")),
        column=False,
    ),
    Attribute("self", _read_only(_string("An image self url")), column=False),
    Attribute("file", _read_only(_string("An image file url")), column=False),
    Attribute(
        "stores",
        _read_only(
            _string(
                "Store in which image data resides. Only present when the operator has "
                "enabled multiple stores. May be a comma-separated list of store identifiers."
            )
        ),
        column=False,
    ),
    Attribute("schema", _read_only(_string("An image schema url")), column=False),
)

BY_NAME: dict[str, Attribute] = {a.name: a for a in ATTRIBUTES}
# The images table's columns that make an image's record (and both views).
COLUMNS: tuple[str, ...] = tuple(a.name for a in ATTRIBUTES if a.column)
# What a create body may carry besides extra properties.
CREATE_ATTRIBUTES: tuple[str, ...] = tuple(
    a.name for a in ATTRIBUTES if a.access in (SETTABLE, CREATE_ONLY) and a.name != "tags"
)
FROZEN_AFTER_QUEUED: tuple[str, ...] = tuple(a.name for a in ATTRIBUTES if a.frozen_after_queued)


def is_attribute(name: str) -> bool:
    """Whether ``name`` is one of the image's own attributes (never an extra property)."""
    return name in BY_NAME


def check_writable(name: str, creating: bool = False) -> None:
    """403 for names a client may not write: read-only attributes (``id`` once the image
    exists), reserved names and the ``os_glance`` prefix; locations only by PATCH."""
    attribute = BY_NAME.get(name)
    if attribute is not None:
        if attribute.access == READ_ONLY or (attribute.access == CREATE_ONLY and not creating):
            raise Forbidden(f"Attribute '{name}' is read-only.")
        if attribute.access == LOCATIONS and creating:
            raise Forbidden(f"Attribute '{name}' is reserved.")
        return
    if name in RESERVED_NAMES or name.startswith(RESERVED_PREFIX):
        raise Forbidden(f"Attribute '{name}' is reserved.")


def check_property(name, value=None, check_value: bool = True) -> None:
    """An extra property's key (and value) as both databases can store it: 400 if not."""
    if not isinstance(name, str) or not name:
        raise BadRequest("A property name must be a non-empty string.")
    if len(name) > NAME_MAX:
        raise BadRequest(f"Custom property should not be greater than {NAME_MAX} characters.")
    # (the value's type is the schema's to check, with Glance's message)
    if not check_value or not isinstance(value, str):
        return
    if len(value.encode("utf-8", "surrogatepass")) > PROPERTY_VALUE_MAX_BYTES:
        raise BadRequest(
            f"The value of property '{name[:64]}' is longer than {PROPERTY_VALUE_MAX_BYTES} bytes."
        )


def check_format_change(name: str, status: str) -> None:
    """disk_format and container_format change only while queued or importing (403 as
    Glance's domain answers)."""
    if name in FROZEN_AFTER_QUEUED and status not in FORMATS_CHANGEABLE_IN:
        raise Forbidden(f"Attribute {name} can be only replaced for a queued image.")


def image_properties_schema(disk_formats, container_formats) -> dict:
    """The ``properties`` of the image schema, with this deployment's format lists."""
    choices = {"disk_formats": list(disk_formats), "container_formats": list(container_formats)}
    properties = {}
    for attribute in ATTRIBUTES:
        schema = dict(attribute.schema)
        if attribute.enum_option:
            schema["enum"] = [None, *choices[attribute.enum_option]]
        properties[attribute.name] = schema
    return properties
