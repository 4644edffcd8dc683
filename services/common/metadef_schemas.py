"""The metadata definition schemas (``/v2/schemas/metadefs/*``), with the content of
Glance 33's (glance/api/v2/metadef_*.py), and the checks made with them: the gateway
validates request bodies against them and the registry checks what it is sent again.

A property definition is also normalised the way Glance's WSME ``PropertyType`` reads it
(only its known keys, in its order; ``minimum``/``maximum`` as integers; ``default`` as
text; ``enum`` of strings). Where Glance answers 500 (an unknown key, an enum of numbers)
Tessera answers 400."""

from __future__ import annotations

import copy
from functools import cache

import jsonschema

from services.common.errors import BadRequest

TYPES = ["array", "boolean", "integer", "number", "object", "string", None]

DEFINITIONS = {
    "positiveInteger": {"type": "integer", "minimum": 0},
    "positiveIntegerDefault0": {
        "allOf": [{"$ref": "#/definitions/positiveInteger"}, {"default": 0}]
    },
    "stringArray": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
}

#: The attributes of a property definition (the ``property`` definition's items).
PROPERTY_ATTRIBUTES = {
    "name": {"type": "string", "maxLength": 80},
    "title": {"type": "string"},
    "description": {"type": "string"},
    "operators": {"type": "array", "items": {"type": "string"}},
    "type": {"type": "string", "enum": TYPES},
    "required": {"$ref": "#/definitions/stringArray"},
    "minimum": {"type": "number"},
    "maximum": {"type": "number"},
    "maxLength": {"$ref": "#/definitions/positiveInteger"},
    "minLength": {"$ref": "#/definitions/positiveIntegerDefault0"},
    "pattern": {"type": "string", "format": "regex"},
    "enum": {"type": "array"},
    "readonly": {"type": "boolean"},
    "default": {},
    "items": {
        "type": "object",
        "properties": {"type": {"type": "string", "enum": TYPES}, "enum": {"type": "array"}},
    },
    "maxItems": {"$ref": "#/definitions/positiveInteger"},
    "minItems": {"$ref": "#/definitions/positiveIntegerDefault0"},
    "uniqueItems": {"type": "boolean", "default": False},
    "additionalItems": {"type": "boolean"},
}

PROPERTY_MAP = {
    "type": "object",
    "additionalProperties": {
        "type": "object",
        "required": ["title", "type"],
        "properties": PROPERTY_ATTRIBUTES,
    },
}


def _read_only(description: str | None = None) -> dict:
    schema = {"type": "string", "readOnly": True}
    if description:
        schema["description"] = description
        schema["format"] = "date-time"
    return schema


def _link() -> dict:
    return {"readOnly": True, "type": "string"}


def _schema(name: str, properties: dict, required: list | None, definitions=None) -> dict:
    """A Glance ``Schema.raw()``."""
    raw = {"name": name, "properties": properties, "additionalProperties": False}
    if definitions:
        raw["definitions"] = definitions
    if required:
        raw["required"] = required
    return raw


def _paged(name: str, members: dict, definitions: dict | None) -> dict:
    """A Glance ``CollectionSchema.raw()``: ``members`` under ``name``, the paging links,
    and the members' definitions at the top."""
    raw = {
        "name": name,
        "properties": {
            name: members,
            "first": {"type": "string"},
            "next": {"type": "string"},
            "schema": {"type": "string"},
        },
        "links": [
            {"rel": "first", "href": "{first}"},
            {"rel": "next", "href": "{next}"},
            {"rel": "describedby", "href": "{schema}"},
        ],
    }
    if definitions:
        raw["definitions"] = definitions
    return raw


def _collection(name: str, item: dict) -> dict:
    """A list of ``item`` documents (the item's definitions move to the top)."""
    item = copy.deepcopy(item)
    definitions = item.pop("definitions", None)
    return _paged(name, {"type": "array", "items": item}, definitions)


def namespace_schema() -> dict:
    names = {"type": "string"}
    properties = {
        "namespace": {
            "type": "string",
            "description": "The unique namespace text.",
            "maxLength": 80,
        },
        "display_name": {
            "type": "string",
            "description": "The user friendly name for the namespace. Used by UI if available.",
            "maxLength": 80,
        },
        "description": {
            "type": "string",
            "description": "Provides a user friendly description of the namespace.",
            "maxLength": 500,
        },
        "visibility": {
            "type": "string",
            "description": "Scope of namespace accessibility.",
            "enum": ["public", "private"],
        },
        "protected": {
            "type": "boolean",
            "description": "If true, namespace will not be deletable.",
        },
        "owner": {"type": "string", "description": "Owner of the namespace.", "maxLength": 255},
        "created_at": _read_only("Date and time of namespace creation"),
        "updated_at": _read_only("Date and time of the last namespace modification"),
        "schema": _link(),
        "self": _link(),
        "resource_type_associations": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"name": names, "prefix": names, "properties_target": names},
            },
        },
        "properties": {"$ref": "#/definitions/property"},
        "objects": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": names,
                    "description": names,
                    "required": {"$ref": "#/definitions/stringArray"},
                    "properties": {"$ref": "#/definitions/property"},
                },
            },
        },
        "tags": {"type": "array", "items": {"type": "object", "properties": {"name": names}}},
    }
    definitions = {**copy.deepcopy(DEFINITIONS), "property": copy.deepcopy(PROPERTY_MAP)}
    return _schema("namespace", properties, ["namespace"], definitions)


def object_schema() -> dict:
    properties = {
        "name": {"type": "string", "maxLength": 80},
        "description": {"type": "string"},
        "required": {"$ref": "#/definitions/stringArray"},
        "properties": {"$ref": "#/definitions/property"},
        "schema": _link(),
        "self": _link(),
        "created_at": _read_only("Date and time of object creation"),
        "updated_at": _read_only("Date and time of the last object modification"),
    }
    definitions = {**copy.deepcopy(DEFINITIONS), "property": copy.deepcopy(PROPERTY_MAP)}
    return _schema("object", properties, ["name"], definitions)


def property_schema(require_name: bool = True) -> dict:
    definitions = copy.deepcopy(DEFINITIONS)
    definitions["stringArray"] = {  # a single property's: at least one item
        "type": "array",
        "items": {"type": "string"},
        "minItems": 1,
        "uniqueItems": True,
    }
    required = ["type", "title", "name"] if require_name else ["type", "title"]
    return _schema("property", copy.deepcopy(PROPERTY_ATTRIBUTES), required, definitions)


def properties_schema() -> dict:
    """Glance's ``properties`` collection: a map of definitions by name, not a list."""
    item = property_schema(require_name=False)
    definitions = item.pop("definitions")
    return _paged("properties", {"type": "object", "additionalProperties": item}, definitions)


def resource_type_schema() -> dict:
    properties = {
        "name": {
            "type": "string",
            "description": "Resource type names should be aligned with Heat resource types "
            "whenever possible: https://docs.openstack.org/heat/latest/template_guide/"
            "openstack.html",
            "maxLength": 80,
        },
        "prefix": {
            "type": "string",
            "description": "Specifies the prefix to use for the given resource type. Any "
            "properties in the namespace should be prefixed with this prefix when being "
            "applied to the specified resource type. Must include prefix separator (e.g. a "
            "colon :).",
            "maxLength": 80,
        },
        "properties_target": {
            "type": "string",
            "description": "Some resource types allow more than one key / value pair per "
            "instance.  For example, Cinder allows user and image metadata on volumes. Only "
            "the image properties metadata is evaluated by Nova (scheduling or drivers). "
            "This property allows a namespace target to remove the ambiguity.",
            "maxLength": 80,
        },
        "created_at": _read_only("Date and time of resource type association"),
        "updated_at": _read_only(
            "Date and time of the last resource type association modification"
        ),
    }
    return _schema("resource_type_association", properties, ["name"])


def tag_schema() -> dict:
    properties = {
        "name": {"type": "string", "maxLength": 80},
        "created_at": _read_only("Date and time of tag creation"),
        "updated_at": _read_only("Date and time of the last tag modification"),
    }
    return _schema("tag", properties, ["name"])


def tags_body_schema() -> dict:
    """What ``POST .../tags`` accepts (Glance's ``get_schema_for_list``)."""
    item = {
        "type": "object",
        "properties": {"name": {"type": "string"}},
        "required": ["name"],
        "additionalProperties": False,
    }
    return _schema("tags", {"tags": {"type": "array", "items": item}}, None)


@cache
def served() -> dict[str, dict]:
    """Every ``/v2/schemas/metadefs/<name>`` document, by name."""
    return {
        "namespace": namespace_schema(),
        "namespaces": _collection("namespaces", namespace_schema()),
        "resource_type": resource_type_schema(),
        "resource_types": _collection("resource_type_associations", resource_type_schema()),
        "property": property_schema(),
        "properties": properties_schema(),
        "object": object_schema(),
        "objects": _collection("objects", object_schema()),
        "tag": tag_schema(),
        "tags": _collection("tags", tag_schema()),
    }


@cache
def _validator(name: str):
    schema = {
        "property_unnamed": lambda: property_schema(require_name=False),
        "tags_body": tags_body_schema,
    }.get(name, lambda: served()[name])()
    # as Glance's ``jsonschema.validate``: the newest draft, formats not checked
    return jsonschema.validators.validator_for(schema)(schema)


def validate(name: str, document, schema_name: str | None = None) -> None:
    """400 with Glance's message unless ``document`` matches the schema ``name``."""
    error = jsonschema.exceptions.best_match(_validator(name).iter_errors(document))
    if error is not None:
        shown = schema_name or _validator(name).schema["name"]
        raise BadRequest(f"Provided object does not match schema '{shown}': {error.message}")


# --- Glance's WSME PropertyType, as a normalisation of a property definition

_TEXT = ("name", "type", "title", "description", "pattern")
_BOOL = ("readonly", "confidential", "uniqueItems", "additionalItems")
_INT = ("minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems")
PROPERTY_ORDER = (
    "name",
    "type",
    "title",
    "description",
    "operators",
    "default",
    "readonly",
    "minimum",
    "maximum",
    "enum",
    "pattern",
    "minLength",
    "maxLength",
    "confidential",
    "items",
    "uniqueItems",
    "minItems",
    "maxItems",
    "additionalItems",
)


def _strings(value, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest(f"Invalid value for {what}: a list of strings is expected.")
    return value


def property_type(definition, where: str = "properties") -> dict:
    """The property definition as Glance keeps it (400 when Glance could not read it)."""
    if not isinstance(definition, dict):
        raise BadRequest(f"Invalid value for argument {where}: an object is expected.")
    unknown = set(definition) - set(PROPERTY_ORDER)
    if unknown:
        raise BadRequest(f"Unknown attribute for argument {where}: {', '.join(sorted(unknown))}")
    out = {}
    for key in PROPERTY_ORDER:
        value = definition.get(key)
        if value is None:
            continue
        if key in _TEXT and not isinstance(value, str):
            raise BadRequest(f"Invalid value for {key}: a string is expected.")
        if key in _BOOL and not isinstance(value, bool):
            raise BadRequest(f"Invalid value for {key}: a boolean is expected.")
        if key in _INT:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise BadRequest(f"Invalid value for {key}: a number is expected.")
            value = int(value)
        elif key in ("operators", "enum"):
            value = _strings(value, key)
        elif key == "default":
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise BadRequest("Invalid value for default: a string is expected.")
            value = str(value)
        elif key == "items":
            value = _item_type(value)
        out[key] = value
    return out


def _item_type(items) -> dict:
    if not isinstance(items, dict):
        raise BadRequest("Invalid value for items: an object is expected.")
    unknown = set(items) - {"type", "enum"}
    if unknown:
        raise BadRequest(f"Unknown attribute for argument items: {', '.join(sorted(unknown))}")
    out = {}
    if items.get("type") is not None:
        if not isinstance(items["type"], str):
            raise BadRequest("Invalid value for items.type: a string is expected.")
        out["type"] = items["type"]
    if items.get("enum") is not None:
        out["enum"] = _strings(items["enum"], "items.enum")
    return out


def property_types(properties, where: str = "properties") -> dict:
    """A ``{name: definition}`` map normalised (an object's or a namespace's)."""
    if properties is None:
        return {}
    if not isinstance(properties, dict):
        raise BadRequest(f"Invalid value for argument {where}: an object is expected.")
    return {name: property_type(value, where) for name, value in properties.items()}
