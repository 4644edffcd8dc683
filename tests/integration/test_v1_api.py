"""The legacy Image API v1 (services/api/v1.py) against a real stack, on SQLite and
MariaDB: seed 003's curl commands as its author ran them (base64 body included), the
same image seen through v1 and v2, updates, members, list filters and the error paths
(v1's webob pages, never a 500)."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import uuid

import pytest

from tests.integration.test_image_data import upload, wait_for
from tests.integration.test_image_formats import qemu_img

pytestmark = pytest.mark.skipif(
    not (shutil.which("curl") and shutil.which("base64") and shutil.which("qemu-img")),
    reason="curl, base64 and qemu-img are needed (make system-deps)",
)
OCTETS = {"Content-Type": "application/octet-stream"}


def curl(command: str) -> bytes:
    """A shell command line as the seed writes it; its standard output."""
    done = subprocess.run(command, shell=True, capture_output=True, timeout=60, check=True)
    return done.stdout


def split_response(raw: bytes) -> tuple[int, dict, bytes]:
    """``curl -i`` output: status, headers (lower-case names), body."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def v1_error(resp, code: int, accept: str | None = None) -> str:
    """An error as Glance v1 wrote it (webob's page); returns the body text."""
    assert resp.status_code == code, resp.text
    text = resp.text
    if accept is None or "*/*" in accept or "html" in accept:
        assert resp.headers["Content-Type"].startswith("text/html")
        assert f"<h1>{code} " in text
    return text


def head(api, image_id: str) -> dict:
    resp = api.request("HEAD", f"/v1/images/{image_id}")
    assert resp.status_code == 200, resp.headers
    return {k.lower(): v for k, v in resp.headers.items()}


def test_seed_003_curl_commands(stack, tmp_path):
    """Seed 003's commands, host and file changed only: the image stored is the file,
    not its base64 text (Glance stored the text, 20450682 bytes for a 15138816 file)."""
    path = tmp_path / "cirros-0.3.2-x86_64-disk.img"
    path.write_bytes(qemu_img(tmp_path, "qcow2", "16M"))
    data = path.read_bytes()
    host = stack.url

    status, _, body = split_response(curl(f"curl -i -X GET {host}/v1/images/detail"))
    assert status == 200 and b'"images"' in body

    out = curl(
        f"base64 {path} | curl {host}/v1/images --trace - -i -X POST "
        "-H 'Content-Transfer-Encoding: base64' -H 'Content-Type: application/octet-stream' "
        "-H 'x-image-meta-name: cirros' -H 'x-image-meta-disk_format: qcow2' "
        "-H 'x-image-meta-container_format: bare' --data-binary @-"
    )
    assert b"HTTP/1.1 201" in out, out[-2000:]
    image_id = re.search(rb"Location: /v1/images/([0-9a-f-]{36})", out).group(1).decode()

    stored = [p for p in stack.datadir.iterdir() if p.name.startswith(image_id)]
    assert [p.stat().st_size for p in stored] == [len(data)]
    assert stored[0].read_bytes() == data

    status, _, body = split_response(curl(f"curl -i -X GET {host}/v1/images/detail"))
    assert status == 200 and image_id.encode() in body

    status, headers, _ = split_response(curl(f"curl -i -X HEAD {host}/v1/images/{image_id}"))
    assert status == 200
    assert headers["x-image-meta-status"] == "active"
    assert headers["x-image-meta-size"] == str(len(data))
    assert headers["x-image-meta-disk_format"] == "qcow2"
    assert headers["x-image-meta-checksum"] == hashlib.md5(data).hexdigest()

    status, headers, body = split_response(curl(f"curl -i -X GET {host}/v1/images/{image_id}"))
    assert status == 200 and body == data
    assert headers["x-image-meta-name"] == "cirros"


def test_an_image_is_the_same_through_v1_and_v2(api, admin_api):
    data = b"v1 and v2 " * 1000
    resp = admin_api.post(
        "/v1/images",
        data=data,
        headers={
            **OCTETS,
            "x-image-meta-name": "both",
            "x-image-meta-disk_format": "raw",
            "x-image-meta-container_format": "bare",
            "x-image-meta-is_public": "True",
            "x-image-meta-min_ram": "64",
            "x-image-meta-property-os_distro": "cirros",
        },
    )
    assert resp.status_code == 201, resp.text
    made = resp.json()["image"]
    assert made["is_public"] is True and made["status"] == "active"
    assert made["properties"] == {"os_distro": "cirros"}
    assert resp.headers["ETag"] == made["checksum"] == hashlib.md5(data).hexdigest()
    v2 = api.get(f"/v2/images/{made['id']}").json()  # public: another project sees it
    assert v2["visibility"] == "public" and v2["os_distro"] == "cirros"
    assert (v2["checksum"], v2["size"], v2["min_ram"]) == (made["checksum"], len(data), 64)
    assert api.get(f"/v2/images/{made['id']}/file").content == data

    # and the reverse: made through v2, read through v1
    image = api.create(
        name="from-v2", visibility="private", disk_format="raw", container_format="bare"
    )
    api.patch(f"/v2/images/{image['id']}", [{"op": "add", "path": "/hw_rng", "value": "x"}])
    upload(api, image["id"], data)
    headers = head(api, image["id"])
    assert headers["x-image-meta-is_public"] == "False"
    assert headers["x-image-meta-property-hw_rng"] == "x"
    assert headers["x-image-meta-checksum"] == hashlib.md5(data).hexdigest()
    assert headers["etag"] == headers["x-image-meta-checksum"]
    assert headers["x-image-meta-size"] == str(len(data))
    assert api.get(f"/v1/images/{image['id']}").content == data
    community = api.create(name="c", visibility="community")
    assert head(api, community["id"])["x-image-meta-is_public"] == "False"


def test_update_purges_properties_and_uploads_to_a_queued_image(api):
    resp = api.post(
        "/v1/images",
        headers={
            "x-image-meta-name": "reserved",
            "x-image-meta-property-a": "1",
            "x-image-meta-property-b": "2",
        },
    )
    assert resp.status_code == 201 and resp.json()["image"]["status"] == "queued"
    image_id = resp.json()["image"]["id"]
    path = f"/v1/images/{image_id}"

    # v1's default: the properties the request does not name are removed
    resp = api.put(path, headers={"x-image-meta-name": "renamed", "x-image-meta-property-a": "3"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["image"]["properties"] == {"a": "3"}
    resp = api.put(
        path,
        headers={"x-image-meta-property-c": "4", "x-glance-registry-purge-props": "false"},
    )
    assert resp.json()["image"]["properties"] == {"a": "3", "c": "4"}
    assert api.get(f"/v2/images/{image_id}").json()["name"] == "renamed"

    # data to the queued image (formats first: v2's rule), with its checksum checked
    formats = {"x-image-meta-disk_format": "raw", "x-image-meta-container_format": "bare"}
    api.put(path, headers={**formats, "x-glance-registry-purge-props": "false"})
    bad = api.put(path, data=b"data", headers={**OCTETS, "x-image-meta-checksum": "0" * 32})
    assert "did not match" in v1_error(bad, 400)
    wait_for(lambda: api.get(f"/v2/images/{image_id}").json()["status"] == "queued")
    good = hashlib.md5(b"data").hexdigest()
    resp = api.put(path, data=b"data", headers={**OCTETS, "x-image-meta-checksum": good})
    assert resp.status_code == 200, resp.text
    image = resp.json()["image"]
    assert (image["status"], image["size"], image["checksum"]) == ("active", 4, good)
    assert image["properties"] == {"a": "3", "c": "4"}  # an upload purges nothing

    # a deactivated image's data is refused, as v1 did
    assert api.post(f"/v2/images/{image_id}/actions/deactivate").status_code == 204
    assert "deactivated" in v1_error(api.get(path), 403)
    assert api.post(f"/v2/images/{image_id}/actions/reactivate").status_code == 204
    assert api.get(path).content == b"data"

    assert "unqueued" in v1_error(api.put(path, data=b"more", headers=OCTETS), 409)
    assert "status" in v1_error(api.put(path, headers={"x-image-meta-status": "queued"}), 403)
    assert "size" in v1_error(api.put(path, headers={"x-image-meta-size": "99"}), 403)
    v1_error(api.put(path, headers={"x-image-meta-disk_format": "qcow2"}), 403)


def test_members_and_shared_images(api, other_api):
    resp = api.post("/v1/images", headers={"x-image-meta-name": "to-share"})
    image_id = resp.json()["image"]["id"]
    members = f"/v1/images/{image_id}/members"
    assert api.put(f"{members}/{other_api.project}").status_code == 204
    assert api.put(f"{members}/{other_api.project}").status_code == 204  # kept, no 409
    assert api.get(members).json() == {
        "members": [{"member_id": other_api.project, "can_share": False}]
    }
    # the same membership through v2 (pending until the member accepts)
    v2 = api.get(f"/v2/images/{image_id}/members").json()["members"]
    assert [(m["member_id"], m["status"]) for m in v2] == [(other_api.project, "pending")]
    # v1 lists shares in every status
    listed = other_api.get("/v1/images").json()["images"]
    assert image_id in {i["id"] for i in listed}
    shared = other_api.get(f"/v1/shared-images/{other_api.project}").json()
    assert shared == {"shared_images": [{"image_id": image_id, "can_share": False}]}
    assert api.get(f"/v1/shared-images/{other_api.project}").json() == shared  # the owner
    # only the owner shares
    v1_error(other_api.put(f"{members}/third"), 403)

    resp = api.put(members, json={"memberships": [{"member_id": "third", "can_share": False}]})
    assert resp.status_code == 204, resp.text
    assert [m["member_id"] for m in api.get(members).json()["members"]] == ["third"]
    assert other_api.get(f"/v1/shared-images/{other_api.project}").json()["shared_images"] == []
    v1_error(api.put(members, json={"memberships": "x"}), 400)
    assert api.delete(f"{members}/third").status_code == 204
    v1_error(api.delete(f"{members}/third"), 404)
    assert api.get(members).json() == {"members": []}


def test_list_filters(api):
    tag = uuid.uuid4().hex[:8]
    ids = []
    for n, size in enumerate((10, 1000)):
        resp = api.post(
            "/v1/images",
            data=b"x" * size,
            headers={
                **OCTETS,
                "x-image-meta-name": f"{tag}-{n}",
                "x-image-meta-disk_format": "raw",
                "x-image-meta-container_format": "bare",
                "x-image-meta-property-batch": tag,
            },
        )
        assert resp.status_code == 201, resp.text
        ids.append(resp.json()["image"]["id"])

    def listed(query: str, detail: bool = True) -> list[str]:
        resp = api.get(f"/v1/images{'/detail' if detail else ''}?{query}")
        assert resp.status_code == 200, resp.text
        return [i["id"] for i in resp.json()["images"]]

    assert listed(f"property-batch={tag}&sort_key=name&sort_dir=asc") == ids
    assert listed(f"property-batch={tag}&size_min=100") == [ids[1]]
    assert listed(f"property-batch={tag}&size_max=100") == [ids[0]]
    assert listed(f"name={tag}-0", detail=False) == [ids[0]]
    assert listed(f"property-batch={tag}&is_public=true") == []
    assert len(listed(f"property-batch={tag}&is_public=false")) == 2
    assert len(listed(f"property-batch={tag}&changes-since=2000-01-01T00:00:00")) == 2
    assert listed(f"property-batch={tag}&changes-since=2999-01-01T00:00:00") == []
    first = listed(f"property-batch={tag}&sort_key=name&sort_dir=asc&limit=1")
    assert first == [ids[0]]
    assert listed(f"property-batch={tag}&sort_key=name&sort_dir=asc&marker={ids[0]}") == [ids[1]]
    brief = api.get(f"/v1/images?name={tag}-1").json()["images"][0]
    assert set(brief) == {"id", "name", "disk_format", "container_format", "size", "checksum"}
    for query in ("size_min=big", "sort_key=owner", "sort_dir=up", "changes-since=soon"):
        v1_error(api.get(f"/v1/images/detail?{query}"), 400)


@pytest.mark.parametrize(
    "accept,content_type",
    [
        ("*/*", "text/html"),
        ("application/json", "application/json"),
        ("text/plain", "text/plain"),
    ],
)
def test_errors_are_v1_pages(api, accept, content_type):
    resp = api.get(f"/v1/images/{uuid.uuid4()}", headers={"Accept": accept})
    assert resp.status_code == 404
    assert resp.headers["Content-Type"].startswith(content_type)
    assert "404 Not Found" in resp.text


def test_error_paths_never_500(api, other_api):
    resp = api.post("/v1/images", headers={"x-image-meta-name": "mine"})
    assert resp.status_code == 201
    image_id = resp.json()["image"]["id"]
    path = f"/v1/images/{image_id}"
    cases = [
        (api.post("/v1/images", headers={"x-image-meta-bogus": "1"}), 400, "Bad header"),
        (api.post("/v1/images", headers={"x-image-meta-min_ram": "lots"}), 400, "integer"),
        (api.post("/v1/images", headers={"x-image-meta-size": "-1"}), 400, "negative"),
        (api.post("/v1/images", headers={"x-image-meta-disk_format": "floppy"}), 400, "floppy"),
        (api.post("/v1/images", headers={"x-image-meta-is_public": "true"}), 403, "publicize"),
        (api.post("/v1/images", headers={"x-image-meta-property-name": "x"}), 400, "attribute"),
        (api.post("/v1/images", headers={"x-image-meta-store": "swift"}), 400, "swift"),
        (
            api.post("/v1/images", headers={"x-glance-api-copy-from": "http://x/y"}),
            400,
            "not supported",
        ),
        (
            api.post("/v1/images", data=b"abc", headers={"Content-Type": "text/plain"}),
            400,
            "octet-stream",
        ),
        (
            api.post(
                "/v1/images",
                data=b"abc",
                headers={**OCTETS, "x-image-meta-location": "http://example.com/x"},
            ),
            400,
            "multiple image sources",
        ),
        (
            api.post(
                "/v1/images",
                data=b"not base64!",
                headers={**OCTETS, "Content-Transfer-Encoding": "base64"},
            ),
            400,
            "base64",
        ),
        (
            api.post(
                "/v1/images", data=b"abc", headers={**OCTETS, "Content-Transfer-Encoding": "gzip"}
            ),
            400,
            "Content-Transfer-Encoding",
        ),
        (
            api.post("/v1/images", data=b"abc", headers={**OCTETS, "x-image-meta-size": "4"}),
            400,
            "x-image-meta-size",
        ),
        (
            api.post("/v1/images", headers={"x-image-meta-location": "http://example.com/x"}),
            403,
            "locations",
        ),
        (api.get(f"/v1/images/{uuid.uuid4()}"), 404, "No image"),
        (api.put(f"/v1/images/{uuid.uuid4()}", headers={"x-image-meta-name": "x"}), 404, ""),
        (api.request("HEAD", f"/v1/images/{uuid.uuid4()}"), 404, ""),
        (api.request("HEAD", "/v1/images/detail"), 405, ""),
        (other_api.get(path), 404, ""),  # shared (v1's default), not with other_api
        (other_api.delete(path), 404, ""),
        (api.put(path, headers={"x-image-meta-id": str(uuid.uuid4())}), 403, "id"),
        (api.get(path), 404, "not active"),
        (
            api.put(f"{path}/members", data=b"{", headers={"Content-Type": "application/json"}),
            400,
            "",
        ),
    ]
    for resp, code, text in cases:
        assert resp.status_code == code, (resp.request.method, resp.request.url, resp.text)
        if resp.request.method != "HEAD":
            assert text in resp.text and "<h1>" in resp.text

    # a protected image is not deleted; a queued one is not downloaded
    api.put(path, headers={"x-image-meta-protected": "true"})
    assert "protected" in v1_error(api.delete(path), 403).lower()
    api.put(path, headers={"x-image-meta-protected": "false"})
    assert api.delete(path).status_code == 200 and api.delete(path).status_code == 404


def test_python_glanceclient_v1(stack, other_api, tmp_path):
    """python-glanceclient's own v1 client (still shipped in glanceclient 4): create with
    a file (sent chunked, with x-image-meta-size), get (HEAD), data, list, update,
    members and shared images, delete."""
    from glanceclient import exc
    from glanceclient.v1.client import Client

    glance = Client(endpoint=stack.url, token="unused-in-development-auth")
    path = tmp_path / "disk.raw"
    path.write_bytes(b"glanceclient v1 " * 4096)
    with path.open("rb") as data:
        image = glance.images.create(
            name="gc-v1",
            disk_format="raw",
            container_format="bare",
            data=data,
            properties={"os_distro": "cirros"},
        )
    assert image.status == "active" and image.size == path.stat().st_size
    shown = glance.images.get(image.id)
    assert shown.checksum == hashlib.md5(path.read_bytes()).hexdigest()
    assert shown.properties == {"os_distro": "cirros"} and shown.is_public is False
    assert b"".join(glance.images.data(image.id)) == path.read_bytes()
    assert image.id in {i.id for i in glance.images.list(filters={"name": "gc-v1"})}

    updated = glance.images.update(image.id, name="gc-v1-renamed", properties={"a": "b"})
    assert updated.name == "gc-v1-renamed"  # glanceclient keeps properties (no purge)
    assert updated.properties == {"os_distro": "cirros", "a": "b"}

    glance.image_members.create(image.id, other_api.project)
    assert [m.member_id for m in glance.image_members.list(image=image.id)] == [other_api.project]
    shares = glance.image_members.list(member=other_api.project)
    assert [m.image_id for m in shares] == [image.id]
    glance.image_members.delete(image.id, other_api.project)
    assert glance.image_members.list(image=image.id) == []

    glance.images.delete(image.id)
    with pytest.raises(exc.HTTPNotFound):
        glance.images.get(image.id)
