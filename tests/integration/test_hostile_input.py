"""Hostile input gets a clear 4xx in the API's JSON error shape, never a 500, and changes
nothing: once on SQLite and once on MariaDB (the ``stack`` fixture).

Glance's answers where Glance gives a 4xx (an undecodable URL is a 400, a JSON-patch
call with another media type a 415); a sensible 4xx where Glance itself fails or takes
what it cannot keep. Two answers differ from Glance on purpose: Glance reads a JSON body
of any size and any declared type; Tessera refuses one above 1 MiB (413, as
oslo.middleware's sizelimit does for other OpenStack APIs) and one declared as a type
other than JSON (415; a body with no Content-Type is still read as JSON)."""

from __future__ import annotations

import itertools
import json
import select
import socket
import time
import uuid
from urllib.parse import urlsplit

import psutil
import pytest

PATCH_21 = "application/openstack-images-v2.1-json-patch"
MiB = 1 << 20
BIGINT_OVERFLOW = "99999999999999999999999"


def error_of(resp, code: int) -> str:
    """The response is ``code`` with the JSON error body; returns its message."""
    assert resp.status_code == code, f"{resp.status_code} {resp.text[:300]}"
    assert resp.headers["Content-Type"].startswith("application/json")
    body = resp.json()["error"]
    assert body["code"] == code and body["title"] and body["message"]
    return body["message"]


def post_raw(api, path: str, text: str, content_type: str = "application/json"):
    """POST ``text`` as it is (for JSON no encoder of ours would write)."""
    return api.post(path, data=text.encode(), headers={"Content-Type": content_type})


def names_listed(api, name: str) -> list[str]:
    return [i["id"] for i in api.get("/v2/images", params={"name": name}).json()["images"]]


def nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


# --- deep nesting


@pytest.mark.parametrize("depth", [33, 1000, 100_000])
def test_deeply_nested_create_body(api, depth):
    name = f"deep-{uuid.uuid4().hex[:8]}"
    resp = post_raw(api, "/v2/images", f'{{"name": "{name}", "p": {nested(depth)}}}')
    assert "nested deeper than 32" in error_of(resp, 400)
    assert names_listed(api, name) == []


def test_deeply_nested_patch_and_member_bodies(api, image):
    path = f"/v2/images/{image['id']}"
    body = f'[{{"op": "add", "path": "/p", "value": {nested(100_000)}}}]'
    error_of(api.request("PATCH", path, data=body, headers={"Content-Type": PATCH_21}), 400)
    error_of(post_raw(api, f"{path}/members", f'{{"member": {nested(100_000)}}}'), 400)
    error_of(post_raw(api, f"{path}/members", nested(100_000)), 400)
    error_of(post_raw(api, "/v2/images", nested(100_000, "{}")), 400)
    # a deep but allowed document is read (and refused by the schema, not the reader)
    error_of(post_raw(api, "/v2/images", f'{{"p": {nested(31)}}}'), 400)
    assert api.get(path).json()["updated_at"] == image["updated_at"]


# --- lone surrogates and NUL in any string of a body


@pytest.mark.parametrize("bad", ["\ud800", "\udfff", "a\x00b", "\x00"])
@pytest.mark.parametrize("where", ["name", "property key", "property value", "tag"])
def test_unstorable_text_in_create(api, bad, where):
    name = f"bad-{uuid.uuid4().hex[:8]}"
    body = {"name": name, "disk_format": "raw", "container_format": "bare"}
    if where == "name":
        body["name"] = name + bad
    elif where == "property key":
        body["os_" + bad] = "x"
    elif where == "property value":
        body["os_distro"] = bad
    else:
        body["tags"] = ["ok", bad]
    message = error_of(api.post("/v2/images", json=body), 400)
    assert ("NUL" if "\x00" in bad else "lone surrogate") in message
    assert names_listed(api, name) == []


def test_surrogate_pairs_are_fine(api):
    image = api.create(name="smile \U0001f600", os_distro="\U0001f600")
    assert image["name"] == "smile \U0001f600"
    assert api.get(f"/v2/images/{image['id']}").json()["os_distro"] == "\U0001f600"


@pytest.mark.parametrize("bad", ["\ud800", "x\x00"])
def test_unstorable_text_in_patch(api, image, bad):
    path = f"/v2/images/{image['id']}"
    for changes in (
        [{"op": "add", "path": "/os_distro", "value": bad}],
        [{"op": "replace", "path": "/name", "value": bad}],
        [{"op": "add", "path": "/tags", "value": ["a", bad]}],
        [{"op": "add", "path": f"/os_{bad}", "value": "x"}],
    ):
        error_of(api.patch(path, changes), 400)
    shown = api.get(path).json()
    assert shown["name"] == image["name"] and shown["tags"] == [] and "os_distro" not in shown


@pytest.mark.parametrize("bad", ["\ud800", "project\x00b"])
def test_unstorable_member_id(api, image, bad):
    members = f"/v2/images/{image['id']}/members"
    error_of(api.post(members, json={"member": bad}), 400)
    assert api.get(members).json()["members"] == []
    error_of(api.put(f"{members}/me", json={"status": bad}), 400)


# --- ids, empty names, media types


def test_id_with_a_trailing_newline_creates_nothing(api):
    image_id = str(uuid.uuid4())
    message = error_of(api.post("/v2/images", json={"id": image_id + "\n"}), 400)
    assert "does not match" in message
    error_of(api.get(f"/v2/images/{image_id}"), 404)
    # the same id without the newline is still free
    assert api.create(id=image_id)["id"] == image_id


def test_empty_property_key(api, image):
    name = f"empty-{uuid.uuid4().hex[:8]}"
    error_of(api.post("/v2/images", json={"name": name, "": "x"}), 400)
    assert names_listed(api, name) == []
    path = f"/v2/images/{image['id']}"
    for pointer in ("/", "/ "):  # Glance strips each token: "/ " names ""
        error_of(api.patch(path, [{"op": "add", "path": pointer, "value": "x"}]), 400)
    shown = api.get(path).json()
    assert "" not in shown


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_create_and_member_bodies_must_be_json(api, image, content_type):
    name = f"plain-{uuid.uuid4().hex[:8]}"
    body = json.dumps({"name": name})
    assert "must be JSON" in error_of(post_raw(api, "/v2/images", body, content_type), 415)
    assert names_listed(api, name) == []
    members = f"/v2/images/{image['id']}/members"
    error_of(post_raw(api, members, json.dumps({"member": "p2"}), content_type), 415)
    assert api.get(members).json()["members"] == []
    # no Content-Type at all is read as JSON, as Glance does
    resp = api.post("/v2/images", data=json.dumps({"name": name}).encode())
    assert resp.status_code == 201, resp.text


# --- the URL path: tags and member ids


def test_tags_in_the_path_must_be_utf8_without_nul(api, image):
    tags = f"/v2/images/{image['id']}/tags"
    for bad in ("%FF", "%C3%28", "a%ED%A0%80b", "%00", "a%00b"):
        error_of(api.put(f"{tags}/{bad}"), 400)
        error_of(api.delete(f"{tags}/{bad}"), 400)
    assert api.get(f"/v2/images/{image['id']}").json()["tags"] == []
    assert api.put(f"{tags}/caf%C3%A9").status_code == 204
    assert api.get(f"/v2/images/{image['id']}").json()["tags"] == ["café"]


def test_member_ids_in_the_path_must_be_utf8_without_nul(api, image):
    members = f"/v2/images/{image['id']}/members"
    for bad in ("%FF", "a%00b"):
        error_of(api.get(f"{members}/{bad}"), 400)
        error_of(api.put(f"{members}/{bad}", json={"status": "accepted"}), 400)
        error_of(api.delete(f"{members}/{bad}"), 400)


def test_urls_must_be_utf8(api, image):
    """Glance answers 400 to a URL it cannot decode; werkzeug would pass U+FFFD on."""
    for path in (
        "/v2/images?name=%FF",
        "/v2/images?os_distro=a%ED%A0%80",
        "/v2/images?%FF=x",
        "/v2/images/%FF",
        f"/v2/images/{image['id']}/members?x=%C3",
    ):
        assert "could not be decoded" in error_of(api.get(path), 400)
    assert api.get("/v2/images?name=caf%C3%A9").status_code == 200


# --- list filters


@pytest.mark.parametrize("name", ["size_min", "size_max"])
@pytest.mark.parametrize("value", [BIGINT_OVERFLOW, str(1 << 63), f"-{BIGINT_OVERFLOW}"])
def test_size_filters_beyond_the_column(api, name, value):
    error_of(api.get("/v2/images", params={name: value}), 400)


def test_size_filters_at_the_column_bounds(api):
    assert api.get("/v2/images", params={"size_max": str((1 << 63) - 1)}).status_code == 200
    assert api.get("/v2/images", params={"size_min": "0"}).status_code == 200


# --- body size, with and without a Content-Length


def test_body_above_the_limit(api):
    name = f"big-{uuid.uuid4().hex[:8]}"
    body = json.dumps({"name": name, "os_junk": "x" * (2 * MiB)})
    assert "larger than" in error_of(post_raw(api, "/v2/images", body), 413)
    # the same body chunked (requests sends a generator so): the client, still sending
    # when the limit is passed, reads the answer all the same
    blocks = (body[i : i + 100_000].encode() for i in range(0, len(body), 100_000))
    resp = api.post("/v2/images", data=blocks, headers={"Content-Type": "application/json"})
    assert "larger than" in error_of(resp, 413)
    assert names_listed(api, name) == []


def send_chunked(url: str, path: str, headers: dict, blocks, timeout: float = 60):
    """POST a chunked body over a plain socket, 64 KiB at a time, and stop sending as
    soon as the server answers (before gunicorn, having drained a little, closes);
    returns ``(status, json body)``."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
    head = [f"POST {path} HTTP/1.1", f"Host: {parts.netloc}", "Transfer-Encoding: chunked"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    response = b""
    try:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        for block in itertools.chain(blocks, [b""]):
            for start in range(0, max(len(block), 1), 64 << 10):
                piece = block[start : start + (64 << 10)]
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                if select.select([sock], [], [], 0)[0]:
                    response = sock.recv(1 << 16)
                    break
            if response:
                break
    except (BrokenPipeError, ConnectionResetError):
        pass
    try:
        while b"\r\n\r\n" not in response or not _complete(response):
            more = sock.recv(1 << 16)
            if not more:
                break
            response += more
    except ConnectionResetError:
        pass  # the answer, if any, is read; what it says is asserted below
    finally:
        sock.close()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body or b"null")


def _complete(response: bytes) -> bool:
    head, _, body = response.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return True


def project_headers(api) -> dict:
    return {k: v for k, v in api.session.headers.items() if k.startswith("X-")}


def test_chunked_json_above_the_limit_is_not_stored(api, stack):
    name = f"chunked-{uuid.uuid4().hex[:8]}"
    prefix = json.dumps({"name": name})[:-1].encode() + b', "os_junk": "'
    blocks = [prefix] + [b"x" * (64 << 10)] * 160 + [b'"}']  # 10 MiB
    headers = {**project_headers(api), "Content-Type": "application/json"}
    status, body = send_chunked(stack.url, "/v2/images", headers, blocks)
    assert status == 413 and body["error"]["code"] == 413
    assert names_listed(api, name) == []
    # a small chunked body is read as any other
    status, body = send_chunked(stack.url, "/v2/images", headers, [b'{"name": "', b'ok"}'])
    assert status == 201 and body["name"] == "ok"


def gateway_rss(stack) -> int:
    """The resident memory of the stack's processes together (the gateway's workers
    among them)."""
    procs = psutil.Process(stack.process.pid).children(recursive=True)
    return sum(p.memory_info().rss for p in procs if p.is_running())


def test_chunked_junk_costs_no_memory(api, stack):
    before = gateway_rss(stack)
    headers = {**project_headers(api), "Content-Type": "application/json"}
    started = time.monotonic()
    status, body = send_chunked(stack.url, "/v2/images", headers, itertools.repeat(b"[" * MiB, 200))
    assert status == 413 and body["error"]["code"] == 413
    grown = gateway_rss(stack) - before
    assert grown < 32 * MiB, f"the stack grew by {grown / MiB:.0f} MiB"
    assert time.monotonic() - started < 30
    assert api.get("/v2/images?limit=1").status_code == 200
