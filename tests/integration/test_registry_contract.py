"""The registry checks what reaches it over RPC itself: a caller that skips the
gateway's parsing (or a gateway of another version) still cannot store what the API
would refuse."""

from __future__ import annotations

import pytest

from services.api.rpc_client import RpcClient
from services.common.config import amqp_uri, load_config
from services.common.context import RequestContext
from services.common.errors import BadRequest, Forbidden

OWNER = RequestContext(project_id="contract-project", user_id="u", roles=("member", "reader"))
GOOD_QUERY = {"limit": 5, "sort": [["created_at", "desc"]]}


@pytest.fixture
def registry(stack):
    client = RpcClient(amqp_uri(load_config(["--config-file", str(stack.config)])), timeout=10)
    yield lambda method, *args: client.call("registry", method, OWNER, *args)
    client.close()


def test_a_well_formed_call_works(registry):
    record = registry("create_image", {"attributes": {"name": "ok"}, "properties": {"k": "v"}})
    assert record["properties"] == {"k": "v"}
    assert registry("list_images", GOOD_QUERY)["images"][0]["id"] == record["id"]


@pytest.mark.parametrize(
    "new, error",
    [
        ({"attributes": {"status": "active"}}, BadRequest),
        ({"attributes": {"id": "not-a-uuid"}}, BadRequest),
        ({"properties": {"status": "active"}}, Forbidden),
        ({"properties": {"name": "sneaky"}}, BadRequest),
        ({"properties": {"os_glance_import_task": "x"}}, Forbidden),
        ({"properties": {"": "empty key"}}, BadRequest),
        ({"properties": {"k": 7}}, BadRequest),
        ({"properties": {"k": "x" * 70_000}}, BadRequest),
        ({"tags": ["t" * 256]}, BadRequest),
        ({"attributes": {"min_ram": -1}}, BadRequest),
        ({"unexpected": 1}, BadRequest),
    ],
)
def test_bad_new_images_are_refused(registry, new, error):
    with pytest.raises(error):
        registry("create_image", new)


@pytest.mark.parametrize(
    "change, error",
    [
        ({"op": "replace", "path": ["status"], "value": "active"}, Forbidden),
        ({"op": "replace", "path": ["id"], "value": "x"}, Forbidden),
        ({"op": "add", "path": ["deleted"], "value": "1"}, Forbidden),
        ({"op": "move", "path": ["name"], "value": "x"}, BadRequest),
        ({"op": "replace", "path": ["name", "x"], "value": "x"}, BadRequest),
        ({"op": "replace", "path": ["min_disk"], "value": "big"}, BadRequest),
        ({"op": "add", "path": ["k"], "value": 1}, BadRequest),
        ({"op": "add", "path": [""], "value": "v"}, BadRequest),
        ({"op": "replace", "path": "name", "value": "x"}, BadRequest),
    ],
)
def test_bad_changes_are_refused_and_change_nothing(registry, change, error):
    record = registry("create_image", {"attributes": {"name": "before"}})
    with pytest.raises(error):
        registry("update_image", record["id"], [change])
    assert registry("get_image", record["id"]) == record


@pytest.mark.parametrize(
    "query",
    [
        {**GOOD_QUERY, "limit": -1},
        {**GOOD_QUERY, "limit": "5"},
        {**GOOD_QUERY, "sort": [["deleted", "asc"]]},
        {**GOOD_QUERY, "sort": [["name", "sideways"]]},
        {**GOOD_QUERY, "filters": [{"field": "deleted", "op": "eq", "value": True}]},
        {**GOOD_QUERY, "filters": [{"field": "size", "op": "gte", "value": 2**70}]},
        {**GOOD_QUERY, "filters": [{"field": "size", "op": "gte", "value": "1"}]},
        {**GOOD_QUERY, "filters": [{"field": "name", "op": "like", "value": "%"}]},
        {**GOOD_QUERY, "filters": [{"field": "created_at", "op": "gt", "value": "yesterday"}]},
        {**GOOD_QUERY, "visibility": "everything"},
        {**GOOD_QUERY, "properties": {"k": 1}},
        {**GOOD_QUERY, "where": "1=1"},
    ],
)
def test_bad_list_queries_are_refused(registry, query):
    with pytest.raises(BadRequest):
        registry("list_images", query)
