"""The v1 API's switch (``[DEFAULT] enable_v1_api``) and its wire format in one process:
the version document, /v1 routes on and off, the list query v1's filters become, the
header parsing and the streaming base64 and checksum readers (services/api/v1_meta.py)."""

from __future__ import annotations

import base64
import hashlib
import io

import pytest

from services.api.app import create_app
from services.api.v1_meta import Base64Reader, ChecksumReader, meta_from_headers
from services.common.config import load_config
from services.common.errors import BadRequest, StoreUnavailable


class ListRpc:
    """Answers ``list_images`` with no images and keeps the queries it was sent."""

    def __init__(self):
        self.queries = []

    def call(self, service, method, ctx, *args, **kwargs):
        assert (service, method) == ("registry", "list_images")
        self.queries.append(args[0])
        return {"images": [], "more": False}


def client(tmp_path, rpc, **default):
    path = tmp_path / "tessera.conf"
    path.write_text("[DEFAULT]\n" + "".join(f"{k} = {v}\n" for k, v in default.items()))
    return create_app(load_config(["--config-file", str(path)]), rpc).test_client()


def test_v1_on_by_default_and_listed_deprecated(tmp_path):
    rpc = ListRpc()
    api = client(tmp_path, rpc)
    versions = api.get("/versions").get_json()["versions"]
    v1 = [v for v in versions if v["id"].startswith("v1")]
    assert [(v["id"], v["status"]) for v in v1] == [("v1.1", "DEPRECATED"), ("v1.0", "DEPRECATED")]
    assert v1[0]["links"][0]["href"].endswith("/v1/")
    assert versions[0]["status"] == "CURRENT"  # v2's stay first
    resp = api.get("/v1/images/detail?is_public=false&property-os_distro=cirros&size_min=5")
    assert resp.status_code == 200 and resp.get_json() == {"images": []}
    query = rpc.queries[-1]
    assert query["member_status"] == "all" and query["properties"] == {"os_distro": "cirros"}
    assert {"field": "size", "op": "gte", "value": 5} in query["filters"]
    assert {
        "field": "visibility",
        "op": "in",
        "value": ["private", "shared", "community"],
    } in query["filters"]


def test_v1_off_is_a_404_and_not_listed(tmp_path):
    rpc = ListRpc()
    api = client(tmp_path, rpc, enable_v1_api="false")
    for path in ("/v1/images", "/v1/images/detail", "/v1/images/some-id"):
        assert api.get(path).status_code == 404
    assert api.post("/v1/images").status_code == 404
    assert rpc.queries == []
    versions = api.get("/versions").get_json()["versions"]
    assert not [v for v in versions if v["id"].startswith("v1")]
    assert api.get("/").status_code == 300


class DownloadRpc:
    """Answers ``get_image`` with an active image and refuses ``open_download`` (the
    store is out of reach); keeps the calls it was sent."""

    def __init__(self):
        self.calls = []

    def call(self, service, method, ctx, *args, **kwargs):
        self.calls.append((service, method, *args))
        if method == "get_image":
            return {
                "id": args[0],
                "name": "cirros",
                "status": "active",
                "container_format": "bare",
                "disk_format": "raw",
                "size": 3,
                "virtual_size": None,
                "checksum": None,
                "min_ram": 0,
                "min_disk": 0,
                "owner": "project",
                "visibility": "private",
                "protected": False,
                "created_at": "2026-01-31T12:00:00Z",
                "updated_at": "2026-01-31T12:00:00Z",
                "properties": {},
                "locations": [{"url": "file:///images/x", "metadata": {}}],
            }
        assert (service, method) == ("store", "open_download")
        raise StoreUnavailable("The store is out of reach.")


def test_v1_download_asks_the_registry_once(tmp_path):
    rpc = DownloadRpc()
    resp = client(tmp_path, rpc).get("/v1/images/some-id")
    assert resp.status_code == 503
    assert [c[:2] for c in rpc.calls] == [("registry", "get_image"), ("store", "open_download")]
    assert rpc.calls[0][2:] == ("some-id", "download_image")


def test_meta_from_headers():
    meta = meta_from_headers(
        {
            "X-Image-Meta-Name": "cirros",
            "x-image-meta-disk_format": "qcow2",
            "x-image-meta-size": "42",
            "x-image-meta-is_public": "True",
            "x-image-meta-property-os-distro": "caf\u00e9".encode().decode("latin-1"),
            "x-image-meta-owner": "",
            "Content-Type": "application/octet-stream",
        }
    )
    assert meta == {
        "name": "cirros",
        "disk_format": "qcow2",
        "size": 42,
        "is_public": True,
        "owner": None,
        "properties": {"os_distro": "caf\u00e9"},
    }
    for bad in ({"x-image-meta-colour": "red"}, {"x-image-meta-size": "big"}):
        with pytest.raises(BadRequest):
            meta_from_headers(bad)


def read_all(reader, block: int) -> bytes:
    out = []
    while chunk := reader.read(block):
        out.append(chunk)
    return b"".join(out)


@pytest.mark.parametrize("block", [1, 3, 4, 1000, 1 << 20])
@pytest.mark.parametrize("length", [0, 1, 2, 3, 57, 5000])
def test_base64_reader_decodes_any_framing(block, length):
    data = bytes(range(256)) * 20
    data = data[:length]
    encoded = base64.encodebytes(data)  # 76-character lines, as base64(1) writes them
    assert read_all(Base64Reader(io.BytesIO(encoded)), block) == data
    assert read_all(Base64Reader(io.BytesIO(encoded.replace(b"\n", b"\r\n"))), block) == data


@pytest.mark.parametrize("encoded", [b"not base64!", b"QUJD=QUJD", b"QUJ", b"QQ==QUJD"])
def test_base64_reader_refuses_what_is_not_base64(encoded):
    with pytest.raises(BadRequest):
        read_all(Base64Reader(io.BytesIO(encoded)), 4)


def test_checksum_reader_holds_back_the_last_block_on_a_mismatch():
    data = b"x" * 10_000
    good = ChecksumReader(io.BytesIO(data), hashlib.md5(data).hexdigest())
    assert read_all(good, 4096) == data
    bad = ChecksumReader(io.BytesIO(data), "0" * 32)
    handed = []
    with pytest.raises(BadRequest, match="did not match"):
        while chunk := bad.read(4096):
            handed.append(chunk)
    assert sum(map(len, handed)) < len(data)  # the store never got the whole image
    with pytest.raises(BadRequest):
        read_all(ChecksumReader(io.BytesIO(b""), "0" * 32), 10)
