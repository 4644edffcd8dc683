"""``GET /v2/images`` query parsing (services/api/list_params.py)."""

from __future__ import annotations

import pytest
from werkzeug.datastructures import MultiDict

from services.api.list_params import parse_list_query
from services.common.config import load_config
from services.common.errors import BadRequest


@pytest.fixture(scope="module")
def conf():
    return load_config([])


def parse(conf, *pairs: tuple[str, str]) -> dict:
    return parse_list_query(MultiDict(list(pairs)), conf).to_wire()


def filters_on(query: dict, field: str) -> list[dict]:
    return [f for f in query["filters"] if f["field"] == field]


def test_empty_query_has_glance_defaults(conf):
    query = parse(conf)
    assert query["limit"] == conf.limit_param_default == 25
    assert query["marker"] is None
    assert query["sort"] == [["created_at", "desc"]]
    assert query["visibility"] is None
    assert query["member_status"] == "accepted"
    assert query["os_hidden"] is False
    assert query["tags"] == []
    assert query["filters"] == []
    assert query["properties"] == {}


# --- limit ---


def test_limit_is_taken_as_given(conf):
    assert parse(conf, ("limit", "7"))["limit"] == 7
    assert parse(conf, ("limit", "0"))["limit"] == 0


def test_limit_is_clamped_to_api_limit_max(conf):
    assert parse(conf, ("limit", "5000"))["limit"] == conf.api_limit_max == 1000


@pytest.mark.parametrize("raw", ["abc", "1.5", ""])
def test_non_integer_limit_is_bad_request(conf, raw):
    with pytest.raises(BadRequest, match="integer"):
        parse(conf, ("limit", raw))


def test_negative_limit_is_bad_request(conf):
    with pytest.raises(BadRequest, match="positive"):
        parse(conf, ("limit", "-1"))


# --- sorting ---


def test_new_sort_syntax_with_default_direction(conf):
    query = parse(conf, ("sort", "name:asc,size"))
    assert query["sort"] == [["name", "asc"], ["size", "desc"]]


def test_new_sort_syntax_strips_spaces(conf):
    assert parse(conf, ("sort", " name : asc , id:desc"))["sort"] == [
        ["name", "asc"],
        ["id", "desc"],
    ]


def test_classic_sort_pairs_keys_with_dirs(conf):
    query = parse(
        conf, ("sort_key", "name"), ("sort_dir", "asc"), ("sort_key", "size"), ("sort_dir", "desc")
    )
    assert query["sort"] == [["name", "asc"], ["size", "desc"]]


def test_classic_single_sort_dir_applies_to_every_key(conf):
    query = parse(conf, ("sort_key", "name"), ("sort_key", "status"), ("sort_dir", "asc"))
    assert query["sort"] == [["name", "asc"], ["status", "asc"]]


def test_classic_sort_dir_alone_sorts_created_at(conf):
    assert parse(conf, ("sort_dir", "asc"))["sort"] == [["created_at", "asc"]]


def test_classic_sort_key_alone_sorts_descending(conf):
    assert parse(conf, ("sort_key", "name"))["sort"] == [["name", "desc"]]


@pytest.mark.parametrize("mixed", [("sort_key", "name"), ("sort_dir", "asc")])
def test_mixing_sort_syntaxes_is_bad_request(conf, mixed):
    with pytest.raises(BadRequest, match="cannot be combined"):
        parse(conf, ("sort", "name:asc"), mixed)


@pytest.mark.parametrize(
    "pairs",
    [
        [("sort", "owner:asc")],
        [("sort", "name,")],
        [("sort_key", "checksum")],
    ],
)
def test_unknown_sort_key_is_bad_request(conf, pairs):
    with pytest.raises(BadRequest, match="Invalid sort key"):
        parse(conf, *pairs)


@pytest.mark.parametrize(
    "pairs",
    [
        [("sort", "name:up")],
        [("sort_key", "name"), ("sort_dir", "ascending")],
    ],
)
def test_unknown_sort_direction_is_bad_request(conf, pairs):
    with pytest.raises(BadRequest, match="Invalid sort direction"):
        parse(conf, *pairs)


@pytest.mark.parametrize(
    "pairs",
    [
        [
            ("sort_key", "name"),
            ("sort_key", "size"),
            ("sort_key", "id"),
            ("sort_dir", "asc"),
            ("sort_dir", "desc"),
        ],
        [("sort_dir", "asc"), ("sort_dir", "desc")],
    ],
)
def test_mismatched_sort_dir_count_is_bad_request(conf, pairs):
    with pytest.raises(BadRequest, match="does not match"):
        parse(conf, *pairs)


# --- visibility, member_status, changes-since ---


@pytest.mark.parametrize("visibility", ["community", "public", "private", "shared", "all"])
def test_known_visibilities_pass_through(conf, visibility):
    assert parse(conf, ("visibility", visibility))["visibility"] == visibility


def test_unknown_visibility_is_bad_request(conf):
    with pytest.raises(BadRequest, match="visibility"):
        parse(conf, ("visibility", "everyone"))


@pytest.mark.parametrize("status", ["pending", "accepted", "rejected", "all"])
def test_known_member_statuses_pass_through(conf, status):
    assert parse(conf, ("member_status", status))["member_status"] == status


def test_unknown_member_status_is_bad_request(conf):
    with pytest.raises(BadRequest, match="Invalid status"):
        parse(conf, ("member_status", "maybe"))


def test_changes_since_is_rejected(conf):
    with pytest.raises(BadRequest, match="changes-since"):
        parse(conf, ("changes-since", "2026-01-01T00:00:00Z"))


# --- size, protected, os_hidden ---


def test_size_bounds_become_integer_filters(conf):
    query = parse(conf, ("size_min", "10"), ("size_max", "20"))
    assert filters_on(query, "size") == [
        {"field": "size", "op": "gte", "value": 10},
        {"field": "size", "op": "lte", "value": 20},
    ]


@pytest.mark.parametrize("name", ["size_min", "size_max"])
def test_non_integer_size_bound_is_bad_request(conf, name):
    with pytest.raises(BadRequest, match=name):
        parse(conf, (name, "big"))


@pytest.mark.parametrize(
    ("raw", "value"), [("true", True), ("False", False), ("1", True), ("no", False)]
)
def test_protected_is_a_boolean_filter(conf, raw, value):
    assert filters_on(parse(conf, ("protected", raw)), "protected") == [
        {"field": "protected", "op": "eq", "value": value}
    ]


@pytest.mark.parametrize(("raw", "value"), [("true", True), ("false", False)])
def test_os_hidden_is_a_boolean(conf, raw, value):
    assert parse(conf, ("os_hidden", raw))["os_hidden"] is value


@pytest.mark.parametrize("name", ["protected", "os_hidden"])
def test_non_boolean_flag_is_bad_request(conf, name):
    with pytest.raises(BadRequest, match=name):
        parse(conf, (name, "perhaps"))


# --- field filters ---


def test_plain_field_filter_is_equality(conf):
    query = parse(conf, ("name", "cirros"), ("owner", "p1"))
    assert filters_on(query, "name") == [{"field": "name", "op": "eq", "value": "cirros"}]
    assert filters_on(query, "owner") == [{"field": "owner", "op": "eq", "value": "p1"}]


def test_in_list_respects_quoted_commas(conf):
    query = parse(conf, ("name", 'in:"a,b",c'))
    assert filters_on(query, "name") == [{"field": "name", "op": "in", "value": ["a,b", "c"]}]


def test_in_list_of_statuses(conf):
    query = parse(conf, ("status", "in:active, queued"))
    assert filters_on(query, "status")[0]["value"] == ["active", "queued"]


@pytest.mark.parametrize("raw", ["in:", "in:a,,b"])
def test_in_list_with_empty_member_is_bad_request(conf, raw):
    with pytest.raises(BadRequest, match="'in' list"):
        parse(conf, ("id", raw))


@pytest.mark.parametrize("op", ["gt", "gte", "lt", "lte", "eq", "neq"])
@pytest.mark.parametrize("field", ["created_at", "updated_at"])
def test_time_filters_take_operators(conf, field, op):
    query = parse(conf, (field, f"{op}:2026-01-31T12:00:00Z"))
    assert filters_on(query, field) == [{"field": field, "op": op, "value": "2026-01-31T12:00:00Z"}]


@pytest.mark.parametrize("raw", ["after:2026-01-31T12:00:00Z", "in:2026-01-31T12:00:00Z"])
def test_time_filter_with_unknown_operator_is_bad_request(conf, raw):
    with pytest.raises(BadRequest, match="operators"):
        parse(conf, ("created_at", raw))


@pytest.mark.parametrize("raw", ["gt:yesterday", "lt:2026-13-01T00:00:00Z"])
def test_time_filter_with_bad_time_is_bad_request(conf, raw):
    with pytest.raises(BadRequest, match="ISO 8601"):
        parse(conf, ("updated_at", raw))


def test_repeated_tags_are_all_kept(conf):
    assert parse(conf, ("tag", "a"), ("tag", "b"))["tags"] == ["a", "b"]


def test_unknown_params_are_property_filters(conf):
    query = parse(conf, ("os_distro", "ubuntu"), ("hw_disk_bus", "in:scsi"))
    assert query["properties"] == {"os_distro": "ubuntu", "hw_disk_bus": "in:scsi"}
    assert query["filters"] == []


def test_marker_passes_through(conf):
    assert parse(conf, ("marker", "abc"))["marker"] == "abc"


@pytest.mark.parametrize(
    "name",
    [
        "limit",
        "marker",
        "visibility",
        "member_status",
        "os_hidden",
        "size_min",
        "protected",
        "name",
        "created_at",
        "os_distro",
    ],
)
def test_repeated_single_valued_param_is_bad_request(conf, name):
    value = "gt:2026-01-01T00:00:00Z" if name == "created_at" else "1"
    with pytest.raises(BadRequest, match="only once"):
        parse(conf, (name, value), (name, value))
