"""The image schema (``/v2/schemas/image``), made from the attribute table, and the
validator both the gateway and the registry check image values with."""

from __future__ import annotations

from functools import lru_cache

from jsonschema import Draft4Validator
from jsonschema.exceptions import ValidationError

from services.common.errors import BadRequest
from services.common.image_attributes import image_properties_schema


def _formats(conf) -> tuple[tuple, tuple]:
    return tuple(conf.image_format.disk_formats), tuple(conf.image_format.container_formats)


def image_schema(conf) -> dict:
    return _image_schema(*_formats(conf))


def _image_schema(disk_formats: tuple, container_formats: tuple) -> dict:
    return {
        "name": "image",
        "properties": image_properties_schema(disk_formats, container_formats),
        "additionalProperties": {"type": "string"},
        "links": [
            {"rel": "self", "href": "{self}"},
            {"rel": "enclosure", "href": "{file}"},
            {"rel": "describedby", "href": "{schema}"},
        ],
    }


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


@lru_cache(maxsize=8)
def _validator(disk_formats: tuple, container_formats: tuple) -> SchemaValidator:
    return SchemaValidator(_image_schema(disk_formats, container_formats))


def image_validator(conf) -> SchemaValidator:
    """The image schema's validator for this deployment's format lists (built once)."""
    return _validator(*_formats(conf))
