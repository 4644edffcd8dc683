"""The metadef schemas are Glance 33's (its served documents, saved beside this test),
and property definitions are read as Glance's model reads them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.common import metadef_schemas as schemas
from services.common.errors import BadRequest

GLANCE = json.loads((Path(__file__).parent / "glance33_metadef_schemas.json").read_text())


@pytest.mark.parametrize("name", sorted(GLANCE))
def test_served_schema_is_glances(name):
    assert schemas.served()[name] == GLANCE[name]


def test_property_type_keeps_glances_keys_in_glances_order():
    definition = {
        "enum": ["a", "b"],
        "title": "T",
        "type": "string",
        "default": 5,
        "minimum": 2.7,
        "items": {"type": "string"},
        "readonly": None,
    }
    normalised = schemas.property_type(definition)
    assert list(normalised) == ["type", "title", "default", "minimum", "enum", "items"]
    assert normalised["default"] == "5" and normalised["minimum"] == 2


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ({"title": "T", "type": "string", "bogus": 1}, "Unknown attribute"),
        ({"title": "T", "type": "integer", "enum": [1, 2]}, "list of strings"),
        ({"title": "T", "type": "string", "default": [1]}, "default"),
        ({"title": "T", "type": "array", "items": {"type": "string", "x": 1}}, "items"),
        ("not an object", "an object is expected"),
    ],
)
def test_property_type_refuses_what_glance_cannot_read(definition, message):
    with pytest.raises(BadRequest, match=message):
        schemas.property_type(definition)


def test_validate_answers_glances_message():
    with pytest.raises(BadRequest) as err:
        schemas.validate("property", {"title": "T", "type": "string"})
    assert str(err.value) == (
        "Provided object does not match schema 'property': 'name' is a required property"
    )
    schemas.validate("property_unnamed", {"title": "T", "type": "string"})
    schemas.validate("tags_body", {"tags": [{"name": "a"}]})
    with pytest.raises(BadRequest):
        schemas.validate("tags_body", {"tags": [{"name": "a", "x": 1}]})
