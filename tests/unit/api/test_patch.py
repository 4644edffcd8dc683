"""``PATCH /v2/images/{id}`` parsing (services/api/patch.py)."""

from __future__ import annotations

import pytest

from services.api.errors import UnsupportedMediaType
from services.api.patch import parse_changes
from services.common.config import load_config
from services.common.errors import BadRequest, Forbidden
from services.common.image_schema import image_validator

V21 = "application/openstack-images-v2.1-json-patch"
V20 = "application/openstack-images-v2.0-json-patch"


@pytest.fixture(scope="module")
def validator():
    return image_validator(load_config([]))


def parse(validator, body, media=V21) -> list[dict]:
    """The parsed changes as plain dicts (no ``value`` in a remove)."""
    parsed = []
    for change in parse_changes(media, lambda: body, validator):
        plain = {"op": change.op, "path": list(change.path)}
        plain["json_schema_version"] = change.json_schema_version
        if change.op != "remove":
            plain["value"] = change.value
        parsed.append(plain)
    return parsed


def op(op_name: str, path, **value) -> dict:
    """A v2.1 operation; pass value=... for add and replace."""
    return {"op": op_name, "path": path, **value}


# --- media types ---


def test_v21_operations_are_decoded(validator):
    body = [
        op("add", "/os_distro", value="ubuntu"),
        op("replace", "/name", value="n"),
        op("remove", "/kernel_id"),
    ]
    assert parse(validator, body) == [
        {"op": "add", "path": ["os_distro"], "json_schema_version": 10, "value": "ubuntu"},
        {"op": "replace", "path": ["name"], "json_schema_version": 10, "value": "n"},
        {"op": "remove", "path": ["kernel_id"], "json_schema_version": 10},
    ]


def test_v20_operations_are_decoded(validator):
    body = [
        {"add": "/os_distro", "value": "ubuntu"},
        {"replace": "/min_ram", "value": 512},
        {"remove": "/kernel_id"},
    ]
    assert parse(validator, body, V20) == [
        {"op": "add", "path": ["os_distro"], "json_schema_version": 4, "value": "ubuntu"},
        {"op": "replace", "path": ["min_ram"], "json_schema_version": 4, "value": 512},
        {"op": "remove", "path": ["kernel_id"], "json_schema_version": 4},
    ]


@pytest.mark.parametrize("media", ["application/json", "application/json-patch+json", ""])
def test_other_media_types_are_unsupported_and_body_is_not_read(validator, media):
    def load_body():
        raise AssertionError("the body must not be read for an unsupported media type")

    with pytest.raises(UnsupportedMediaType) as info:
        parse_changes(media, load_body, validator)
    assert V20 in info.value.accepted and V21 in info.value.accepted


# --- body shape ---


@pytest.mark.parametrize("body", [{"op": "add", "path": "/a", "value": "b"}, "x", None])
def test_body_must_be_a_list(validator, body):
    with pytest.raises(BadRequest, match="JSON array"):
        parse(validator, body)


@pytest.mark.parametrize("item", ["add", ["add", "/a"], 1])
def test_operations_must_be_objects(validator, item):
    with pytest.raises(BadRequest, match="JSON objects"):
        parse(validator, [item])


def test_empty_list_is_no_changes(validator):
    assert parse(validator, []) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"path": "/a", "value": "b"}, "`op`"),
        ({"op": "move", "path": "/a", "value": "b"}, "Invalid operation"),
        ({"op": "add", "value": "b"}, "'path'"),
        ({"op": "add", "path": "/a"}, '"value"'),
        ({"op": "replace", "path": "/a"}, '"value"'),
    ],
)
def test_v21_missing_or_unknown_members(validator, change, message):
    with pytest.raises(BadRequest, match=message):
        parse(validator, [change])


@pytest.mark.parametrize(
    "change",
    [
        {"value": "b"},
        {"add": "/a", "replace": "/b", "value": "c"},
        {"op": "add", "path": "/a", "value": "b"},
    ],
)
def test_v20_needs_exactly_one_operation_member(validator, change):
    with pytest.raises(BadRequest, match="exactly one member"):
        parse(validator, [change], V20)


def test_v20_add_needs_a_value(validator):
    with pytest.raises(BadRequest, match='"value"'):
        parse(validator, [{"add": "/a"}], V20)


# --- JSON pointers ---


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("a", 'does not start with "/"'),
        ("/a//b", 'adjacent "/"'),
        ("/a/ /b", 'adjacent "/"'),
        ("/a/", 'end with "/"'),
        ("/", "valid token"),
        ("/a~2b", '"~"'),
        ("/a~", '"~"'),
        (7, "must be a string"),
    ],
)
def test_invalid_pointers_are_bad_request(validator, path, message):
    with pytest.raises(BadRequest, match=message):
        parse(validator, [op("add", path, value="v")])


def test_pointer_escapes_are_decoded(validator):
    [change] = parse(validator, [op("add", "/a~1b~0c", value="v")])
    assert change["path"] == ["a/b~c"]


def test_escaped_slash_is_one_token_not_two(validator):
    # "~01" is "~" followed by "1", not an escaped "/".
    [change] = parse(validator, [op("add", "/x~01", value="v")])
    assert change["path"] == ["x~1"]


@pytest.mark.parametrize("op_name", ["add", "remove"])
def test_location_index_pointer_is_allowed_for_add_and_remove(validator, op_name):
    value = (
        {"value": {"url": "http://example.com/i.img", "metadata": {}}} if op_name == "add" else {}
    )
    [change] = parse(validator, [op(op_name, "/locations/0", **value)])
    assert change["path"] == ["locations", "0"]


def test_location_value_is_validated_as_a_location(validator):
    with pytest.raises(BadRequest, match="schema"):
        parse(validator, [op("add", "/locations/-", value={"url": "http://x"})])


@pytest.mark.parametrize(
    "change",
    [
        op("add", "/a/b", value="v"),
        op("replace", "/locations/0", value={"url": "http://x", "metadata": {}}),
        op("add", "/locations", value={"url": "http://x", "metadata": {}}),
        op("remove", "/name/first"),
    ],
)
def test_nested_pointers_are_bad_request(validator, change):
    with pytest.raises(BadRequest, match="Invalid JSON pointer"):
        parse(validator, [change])


# --- read-only and reserved names ---


@pytest.mark.parametrize(
    "name",
    [
        "status",
        "id",
        "checksum",
        "size",
        "virtual_size",
        "created_at",
        "updated_at",
        "os_hash_value",
        "direct_url",
        "self",
        "file",
        "schema",
        "stores",
    ],
)
@pytest.mark.parametrize("op_name", ["add", "replace", "remove"])
def test_read_only_attributes_are_forbidden(validator, name, op_name):
    value = {} if op_name == "remove" else {"value": "x"}
    with pytest.raises(Forbidden, match="read-only"):
        parse(validator, [op(op_name, f"/{name}", **value)])


@pytest.mark.parametrize(
    "name", ["deleted", "deleted_at", "location", "os_glance_x", "os_glance_import_task"]
)
def test_reserved_names_are_forbidden(validator, name):
    with pytest.raises(Forbidden, match="reserved"):
        parse(validator, [op("add", f"/{name}", value="x")])


def test_property_name_longer_than_255_is_bad_request(validator):
    with pytest.raises(BadRequest, match="255"):
        parse(validator, [op("add", "/" + "k" * 256, value="v")])


# --- values against the image schema ---


@pytest.mark.parametrize(
    "change",
    [
        op("replace", "/min_ram", value="512"),
        op("replace", "/min_disk", value=1.5),
        op("replace", "/name", value="n" * 256),
        op("replace", "/protected", value="yes"),
        op("replace", "/visibility", value="everyone"),
        op("replace", "/disk_format", value="floppy"),
        op("replace", "/tags", value="not-a-list"),
        op("add", "/os_distro", value=7),
        op("add", "/os_distro", value=None),
    ],
)
def test_values_that_break_the_schema_are_bad_request(validator, change):
    with pytest.raises(BadRequest, match="does not match schema 'image'"):
        parse(validator, [change])


@pytest.mark.parametrize(
    "change",
    [
        op("replace", "/name", value="n" * 255),
        op("replace", "/name", value=None),
        op("replace", "/min_ram", value=512),
        op("replace", "/disk_format", value="qcow2"),
        op("replace", "/tags", value=["a", "b"]),
        op("add", "/os_distro", value="ubuntu"),
    ],
)
def test_values_that_fit_the_schema_pass(validator, change):
    assert parse(validator, [change])[0]["value"] == change["value"]


def test_one_bad_operation_rejects_the_whole_patch(validator):
    with pytest.raises(BadRequest):
        parse(validator, [op("add", "/a", value="ok"), op("replace", "/min_ram", value="x")])
