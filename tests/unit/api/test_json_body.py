"""The gateway's one JSON body reader and path-text check (services/api/gateway.py), on a
bare Flask app with the gateway's error table: the limits at their exact edges."""

from __future__ import annotations

import json

import pytest
from flask import Flask, jsonify

from services.api.errors import register_error_handlers
from services.api.gateway import (
    DISCARD_BEFORE_REFUSAL,
    MAX_JSON_BODY,
    MAX_JSON_DEPTH,
    json_body,
    path_text,
)


@pytest.fixture(scope="module")
def client():
    app = Flask("test")
    register_error_handlers(app)

    @app.post("/body")
    def body():
        return jsonify({"body": json_body()})

    @app.put("/tags/<path:tag>")
    def tag(tag):
        return jsonify({"tag": path_text(tag, "tag")})

    return app.test_client()


def answer(resp) -> tuple[int, object]:
    data = resp.get_json()
    if resp.status_code >= 400:
        assert data["error"]["code"] == resp.status_code
        return resp.status_code, data["error"]["message"]
    return resp.status_code, data["body" if "body" in data else "tag"]


def post(client, raw: bytes | str, content_type: str | None = "application/json", **kw):
    headers = {"Content-Type": content_type} if content_type else {}
    return answer(client.post("/body", data=raw, headers=headers, **kw))


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_nesting_at_and_past_the_limit(client):
    assert post(client, nested(MAX_JSON_DEPTH))[0] == 200
    code, message = post(client, nested(MAX_JSON_DEPTH + 1))
    assert code == 400 and "nested deeper" in message
    deep_object = '{"a":' * (MAX_JSON_DEPTH + 1) + "1" + "}" * (MAX_JSON_DEPTH + 1)
    assert post(client, deep_object)[0] == 400
    assert post(client, nested(100_000))[0] == 400  # past the decoder's own recursion limit


@pytest.mark.parametrize(
    "document",
    [{"\x00": 1}, {"a": "b\x00"}, ["\ud800"], {"k": [{"x": "\udfff"}]}, {"a\udc00": 1}, "\x00"],
)
def test_nul_and_lone_surrogates_anywhere(client, document):
    code, message = post(client, json.dumps(document))
    assert code == 400 and "cannot be stored" in message


def test_surrogate_pairs_and_other_text_are_kept(client):
    document = {"name": "\U0001f600 café", "tags": ["\t", "\u200b"], "n": None}
    assert post(client, json.dumps(document)) == (200, document)
    assert post(client, '{"s": "\\ud83d\\ude00"}') == (200, {"s": "\U0001f600"})


def test_size_at_and_past_the_limit(client):
    exact = b'"' + b"x" * (MAX_JSON_BODY - 2) + b'"'
    assert post(client, exact)[0] == 200
    code, message = post(client, exact + b" ")
    assert code == 413 and "larger than" in message


def test_chunked_body_past_the_limit(client):
    """No Content-Length: the reader keeps limit + 1 bytes, drops a few MiB more (so
    that a client a little over the limit reads the answer) and stops."""
    read = 0

    class Endless:
        def read(self, size=-1):
            nonlocal read
            read += size
            return b" " * size

    resp = client.post(
        "/body",
        headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input": Endless(), "wsgi.input_terminated": True},
    )
    assert answer(resp)[0] == 413
    assert read == MAX_JSON_BODY + 1 + DISCARD_BEFORE_REFUSAL


@pytest.mark.parametrize(
    "content_type, code",
    [
        (None, 200),
        ("application/json", 200),
        ("application/json; charset=utf-8", 200),
        ("application/openstack-images-v2.1-json-patch", 200),
        ("application/vnd.x+json", 200),
        ("text/plain", 415),
        ("application/x-www-form-urlencoded", 415),
        ("application/octet-stream", 415),
    ],
)
def test_media_types(client, content_type, code):
    assert post(client, "{}", content_type)[0] == code


@pytest.mark.parametrize("raw", [b"", b"{", b"\xff{}", b"\xef\xbb\xbf{}", b'"\x00"'])
def test_malformed(client, raw):
    assert post(client, raw)[0] == 400


def path_bytes(client, raw: bytes):
    """PUT with a path of these bytes, as a WSGI server hands them (latin-1 text)."""
    return answer(client.put("/", environ_overrides={"PATH_INFO": raw.decode("latin-1")}))


def test_path_text(client):
    assert path_bytes(client, "/tags/café".encode()) == (200, "café")
    for bad in (b"\xff", b"a\xed\xa0\x80", b"\xc3(", b"\x00", b"a\x00b"):
        assert path_bytes(client, b"/tags/" + bad)[0] == 400
    query = {"PATH_INFO": "/tags/x", "QUERY_STRING": "a=%FF"}
    assert answer(client.put("/", environ_overrides=query))[0] == 400
