"""The sort order of the registry's small lists (services/registry/sorting.py)."""

from __future__ import annotations

import pytest

from services.common.errors import BadRequest
from services.registry.sorting import sort_order

KEYS = ("created_at", "name")


def test_defaults_and_given_order():
    assert sort_order({}, KEYS) == ("created_at", "desc")
    assert sort_order({"sort_key": "", "sort_dir": None}, KEYS) == ("created_at", "desc")
    assert sort_order({"sort_key": "name", "sort_dir": "asc"}, KEYS) == ("name", "asc")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"sort_key": "size"}, "Invalid sort key: size"),
        ({"sort_dir": "up"}, "Invalid sort direction: up"),
        ({"sort_key": "size", "sort_dir": "up"}, "Invalid sort key: size"),
    ],
)
def test_refusals_in_glance_words(query, message):
    with pytest.raises(BadRequest) as refused:
        sort_order(query, KEYS)
    assert refused.value.message == message
