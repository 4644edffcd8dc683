"""Fuzzing the image, patch, tag, member and list routes of a running stack with
hypothesis: whatever a client sends, the answer is never a 5xx, and every 4xx carries
the JSON error shape. Once on SQLite and once on MariaDB (the ``stack`` fixture).

CI runs a fixed, derandomized set of examples (the same every run, about half a minute
per database). To search longer and with fresh randomness locally::

    TESSERA_FUZZ_EXAMPLES=2000 TESSERA_FUZZ_RANDOM=1 \\
        .venv/bin/python -m pytest tests/integration/test_fuzz_api.py -x -q -k sqlite

``--hypothesis-show-statistics`` shows which answers the examples reached. A failure
prints the smallest request hypothesis could shrink it to; the stack's log (``stack.log``
in the test's temporary directory) has the traceback."""

from __future__ import annotations

import json
import os
import string
from urllib.parse import quote

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from services.api.list_params import NOT_FILTERS
from services.common.contracts import FILTER_FIELDS
from tests.conftest import Api

EXAMPLES = int(os.environ.get("TESSERA_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not os.environ.get("TESSERA_FUZZ_RANDOM"),
    database=None,  # nothing written into the working tree
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # one image per test serves every example
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
    print_blob=True,
)

MAX_QUERY = 3800
PATCH_TYPES = (
    "application/openstack-images-v2.1-json-patch",
    "application/openstack-images-v2.0-json-patch",
)
ATTRIBUTES = (
    "id",
    "name",
    "visibility",
    "protected",
    "os_hidden",
    "owner",
    "container_format",
    "disk_format",
    "min_ram",
    "min_disk",
    "tags",
    "locations",
    "status",
    "size",
    "checksum",
    "self",
    "file",
    "schema",
    "direct_url",
    "created_at",
    "os_glance_foo",
    "os_distro",
    "deleted",
)
# Every parameter the list knows (the gateway's own lists), an extra property and a v1 one.
LIST_PARAMS = (*NOT_FILTERS, *FILTER_FIELDS, "os_distro", "changes-since")

# Text as hostile as JSON can carry: every code point, lone surrogates and NUL included,
# plus values at and past the limits the API knows.
characters = st.characters(exclude_categories=())  # controls and NUL, not surrogates
surrogates = st.characters(categories=["Cs"])
edge_texts = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "\ud800",
        "\udc00x",
        "\U0001f600",
        "a" * 255,
        "a" * 256,
        "é" * 300,
        "00000000-0000-0000-0000-000000000000",
        "00000000-0000-0000-0000-000000000000\n",
        "in:a,b",
        'in:"a,b',
        "gte:2026-01-01T00:00:00Z",
        "gt:notatime",
        "99999999999999999999999",
        "-1",
        "1e400",
        "true",
        "raw",
        "bare",
        "public",
        "/",
        "~1",
    ]
)
texts = st.one_of(
    edge_texts,
    st.text(characters, max_size=40),
    st.tuples(st.text(characters, max_size=8), surrogates).map("".join),
)
keys = st.one_of(st.sampled_from(ATTRIBUTES), texts)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)
    ),
    max_leaves=12,
)
# Bodies that are not JSON documents of ours at all: raw bytes, truncated, deep.
raw_bodies = st.one_of(
    st.binary(max_size=64),
    st.integers(min_value=1, max_value=5000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(min_value=1, max_value=5000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.sampled_from([b"", b"{", b'{"name": "\\ud800"}', b'"\\u0000"', b"\xef\xbb\xbf{}"]),
)
content_types = st.sampled_from(
    [None, "application/json", "application/json; charset=latin-1", "text/plain", "x/y+json"]
)


def encoded(text: str) -> str:
    """``text`` percent-encoded for a URL, lone surrogates as their (invalid) UTF-8."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


path_segments = st.one_of(
    texts.filter(bool).map(encoded),
    st.binary(min_size=1, max_size=12).map(lambda b: quote(b, safe="")),
)


def check(resp) -> None:
    """Never a 5xx; a 4xx in the API's JSON error shape."""
    request = f"{resp.request.method} {resp.request.url[:300]}"
    event(f"{resp.request.method} {resp.status_code}")  # --hypothesis-show-statistics
    assert resp.status_code < 500, f"{request} -> {resp.status_code}: {resp.text[:500]}"
    if resp.status_code >= 400:
        assert resp.headers.get("Content-Type", "").startswith("application/json"), request
        error = resp.json()["error"]
        assert error["code"] == resp.status_code and error["title"] and error["message"], request


def body_bytes(draw_value) -> bytes:
    return draw_value if isinstance(draw_value, bytes) else json.dumps(draw_value).encode()


def send(api: Api, method: str, path: str, body, content_type: str | None = None):
    headers = {"Content-Type": content_type} if content_type else {}
    data = None if body is None else body_bytes(body)
    resp = api.request(method, path, data=data, headers=headers)
    check(resp)
    return resp


@FUZZ
@given(
    body=st.one_of(
        st.dictionaries(keys, json_values, max_size=6),
        st.fixed_dictionaries(
            {"name": texts}, optional={"tags": st.lists(texts, max_size=3), "os_x": texts}
        ),
        json_values,
        raw_bodies,
    ),
    content_type=content_types,
)
def test_fuzz_create(api, body, content_type):
    resp = send(api, "POST", "/v2/images", body, content_type)
    if resp.status_code == 201:
        created = resp.json()
        assert resp.headers["Location"].endswith(f"/v2/images/{created['id']}")
        check(api.delete(f"/v2/images/{created['id']}"))


pointers = st.one_of(
    st.sampled_from(
        ["/name", "/tags", "/os_distro", "/locations/0", "/locations/-", "/locations", "/"]
    ),
    st.sampled_from(ATTRIBUTES).map(lambda k: "/" + k),
    texts.map(lambda t: "/" + t),
    texts,
    json_values,
)
# Changes the schema takes, with hostile text where text goes: these reach the registry.
well_formed = st.one_of(
    st.fixed_dictionaries(
        {
            "op": st.sampled_from(["add", "replace"]),
            "path": st.sampled_from(["/name", "/os_distro", "/owner", "/hw_x"]),
            "value": texts,
        }
    ),
    st.fixed_dictionaries(
        {
            "op": st.sampled_from(["add", "replace"]),
            "path": st.just("/tags"),
            "value": st.lists(texts, max_size=3),
        }
    ),
    st.fixed_dictionaries(
        {
            "op": st.sampled_from(["add", "replace"]),
            "path": st.sampled_from(["/min_ram", "/min_disk"]),
            "value": st.integers(min_value=-1, max_value=2**32),
        }
    ),
    st.fixed_dictionaries({"op": st.just("remove"), "path": texts.map(lambda t: "/" + t)}),
)
operations = st.one_of(
    well_formed,
    st.fixed_dictionaries(
        {"op": st.sampled_from(["add", "replace", "remove"]), "path": pointers},
        optional={"value": json_values},
    ),
    st.sampled_from(["add", "replace", "remove"]).flatmap(  # the v2.0 draft's shape
        lambda op: st.fixed_dictionaries({op: pointers}, optional={"value": json_values})
    ),
    st.dictionaries(keys, json_values, max_size=3),
    json_values,
)


@FUZZ
@given(
    changes=st.one_of(
        st.lists(well_formed, min_size=1, max_size=3),
        st.lists(operations, max_size=4),
        json_values,
        raw_bodies,
    ),
    content_type=st.sampled_from([*PATCH_TYPES, PATCH_TYPES[0], None, "application/json"]),
)
def test_fuzz_patch(api, image, changes, content_type):
    send(api, "PATCH", f"/v2/images/{image['id']}", changes, content_type)


@FUZZ
@given(
    method=st.sampled_from(["PUT", "DELETE"]),
    tag=path_segments,
    image_id=st.one_of(st.none(), path_segments),
)
def test_fuzz_tags(api, image, method, tag, image_id):
    send(api, method, f"/v2/images/{image_id or image['id']}/tags/{tag}", None)


@FUZZ
@given(
    method=st.sampled_from(["POST", "GET", "PUT", "DELETE"]),
    member_id=st.one_of(st.none(), path_segments),
    body=st.one_of(
        st.fixed_dictionaries({"member": texts}),
        st.fixed_dictionaries({"status": texts}),
        st.fixed_dictionaries({"status": st.sampled_from(["accepted", "rejected", "pending"])}),
        json_values,
        raw_bodies,
    ),
    content_type=content_types,
)
def test_fuzz_members(api, image, method, member_id, body, content_type):
    members = f"/v2/images/{image['id']}/members"
    if method == "POST" or member_id is None:
        send(api, "POST" if method == "POST" else "GET", members, body, content_type)
    else:
        send(api, method, f"{members}/{member_id}", body if method == "PUT" else None, content_type)


query_keys = st.one_of(st.sampled_from(LIST_PARAMS), path_segments)
query_values = st.one_of(
    texts.map(encoded),
    st.binary(max_size=8).map(lambda b: quote(b, safe="")),
    st.integers().map(str),
    st.sampled_from(["asc", "desc", "name:asc,size", "all", "accepted", "1", "0"]),
)


@FUZZ
@given(
    query=st.lists(st.tuples(query_keys, query_values), max_size=5),
    raw=st.text(string.printable, max_size=20),
)
def test_fuzz_list(api, query, raw):
    # gunicorn answers a request line past 4094 bytes itself (414, text/html), before
    # the app: keep the query below it (whole pairs: a cut escape makes requests quote
    # every "%" again).
    pairs = ""
    for key, value in query:
        pair = f"{encoded(key) if '%' not in key else key}={value}"
        if len(pairs) + len(pair) >= MAX_QUERY:
            break
        pairs += f"&{pair}" if pairs else pair
    send(api, "GET", f"/v2/images?{pairs}", None)
    send(api, "GET", f"/v2/images?{quote(raw, safe='=&:,')}", None)


IMAGE_ROUTES = [
    ("GET", ""),
    ("DELETE", ""),
    ("PATCH", ""),
    ("GET", "/members"),
    ("GET", "/members/p1"),
    ("PUT", "/tags/t"),
    ("POST", "/actions/deactivate"),
    ("POST", "/actions/reactivate"),
    ("GET", "/file"),
]


@FUZZ
@given(image_id=path_segments, route=st.sampled_from(IMAGE_ROUTES))
def test_fuzz_image_ids(api, image_id, route):
    method, tail = route
    body = [] if method == "PATCH" else None
    media = PATCH_TYPES[0] if body is not None else None
    send(api, method, f"/v2/images/{image_id}{tail}", body, media)
