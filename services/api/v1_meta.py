"""The legacy v1 API's wire format (services/api/v1.py): image metadata in and out of
``x-image-meta-*`` headers, v1's image bodies, request bodies sent base64 encoded, and
error bodies as Glance v1 (webob) wrote them.

Nothing here decides what may be done to an image: the translated request goes through
the same registry and store calls as v2's."""

from __future__ import annotations

import base64
import binascii
import hashlib

import webob
import webob.exc
from flask import Response, request
from oslo_utils import strutils

from services.common.errors import BadRequest
from services.common.image_attributes import HIDDEN_PROPERTIES, RESERVED_PREFIX

META = "x-image-meta-"
PROPERTY = "x-image-meta-property-"
# glance/common/utils.py IMAGE_META_HEADERS (Queens), without the prefix
META_FIELDS = (
    "location",
    "size",
    "is_public",
    "disk_format",
    "container_format",
    "name",
    "status",
    "copy_from",
    "uri",
    "checksum",
    "created_at",
    "updated_at",
    "deleted_at",
    "min_ram",
    "min_disk",
    "owner",
    "store",
    "id",
    "protected",
    "deleted",
    "virtual_size",
)
INTEGERS = ("size", "min_ram", "min_disk", "virtual_size")
BOOLEANS = ("is_public", "deleted", "protected")
# the brief list (GET /v1/images) and the full one (detail, HEAD, create, update)
BRIEF = ("id", "name", "disk_format", "container_format", "size", "checksum")


# --- requests


def _header_text(value: str) -> str:
    """A header value as UTF-8 text (WSGI hands headers over as latin-1)."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        raise BadRequest("Header values must be UTF-8 text.") from None


def meta_from_headers(headers) -> dict:
    """The ``x-image-meta-*`` headers of a request as Glance v1 read them
    (``get_image_meta_from_headers``): ``{field: value, ..., "properties": {...}}``,
    sizes as integers, flags as booleans, an empty value as None. An unknown
    ``x-image-meta-`` header is a 400, as in Glance."""
    meta, properties = {}, {}
    for key, value in headers.items():
        key = key.lower()
        if not key.startswith(META):
            continue
        value = _header_text(value)
        if key.startswith(PROPERTY):
            name = key[len(PROPERTY) :].replace("-", "_")
            if not name:
                raise BadRequest(f"Bad header: {key}")
            properties[name] = value
            continue
        name = key[len(META) :].replace("-", "_")
        if name not in META_FIELDS:
            raise BadRequest(f"Bad header: {key}")
        meta[name] = value or None
    for name in INTEGERS:
        if meta.get(name) is not None:
            meta[name] = _integer(name, meta[name])
    for name in BOOLEANS:
        if name in meta:
            meta[name] = strutils.bool_from_string(meta[name])
    meta["properties"] = properties
    return meta


def _integer(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(
            f"Invalid value '{raw}' for parameter '{name}': Cannot convert image {name} "
            f"'{raw}' to an integer."
        ) from None
    if value < 0:
        raise BadRequest(
            f"Invalid value '{raw}' for parameter '{name}': Cannot be a negative value."
        )
    return value


def is_bookkeeping(name: str) -> bool:
    """Properties v1 callers never see nor remove (Tessera's and Glance's own)."""
    return name in HIDDEN_PROPERTIES or name.startswith(RESERVED_PREFIX)


# --- responses


def _v1_time(value: str | None) -> str | None:
    """v1's timestamps: ``2026-01-31T12:00:00.000000`` (no zone; UTC)."""
    return value.rstrip("Z") + ".000000" if value else None


def image_meta(record: dict) -> dict:
    """A registry record as v1's image body (detail, create, update)."""
    return {
        "id": record["id"],
        "name": record["name"],
        "status": record["status"],
        "container_format": record["container_format"],
        "disk_format": record["disk_format"],
        "size": record["size"],
        "virtual_size": record["virtual_size"],
        "checksum": record["checksum"],
        "min_ram": record["min_ram"],
        "min_disk": record["min_disk"],
        "owner": record["owner"],
        "is_public": record["visibility"] == "public",
        "protected": record["protected"],
        "created_at": _v1_time(record["created_at"]),
        "updated_at": _v1_time(record["updated_at"]),
        "deleted_at": None,
        "deleted": False,
        "properties": {k: v for k, v in record["properties"].items() if not is_bookkeeping(k)},
    }


def brief_meta(record: dict) -> dict:
    return {key: record[key] for key in BRIEF}


def _header_value(value) -> str:
    """A value as a header carries it: UTF-8 bytes (as latin-1 for WSGI), and no line
    breaks (a property value set through v2 may hold them; a header cannot)."""
    text = " ".join(str(value).splitlines())
    return text.encode("utf-8").decode("latin-1")


def meta_headers(meta: dict) -> dict:
    """Glance v1's ``image_meta_to_http_headers``: every field that is not None as
    ``x-image-meta-<field>``, each property as ``x-image-meta-property-<key>``, and the
    checksum as the ETag."""
    headers = {}
    for key, value in meta.items():
        if key == "properties":
            for name, prop in value.items():
                if prop is not None:
                    headers[f"{PROPERTY}{name.lower()}"] = _header_value(prop)
        elif value is not None:
            headers[f"{META}{key}"] = _header_value(value)
    if meta.get("checksum"):
        headers["ETag"] = meta["checksum"]
    return headers


def error_response(code: int, message: str, headers: dict | None = None) -> Response:
    """An error as Glance v1 answered it: webob's page for the status, HTML for a client
    accepting ``*/*`` or HTML (curl), JSON for one asking for JSON, else plain text."""
    exc_class = webob.exc.status_map.get(code)
    if exc_class is None or code < 400:
        exc_class = webob.exc.HTTPInternalServerError
    environ = {"REQUEST_METHOD": request.method}
    if request.headers.get("Accept"):
        environ["HTTP_ACCEPT"] = request.headers["Accept"]
    page = webob.Request.blank("/", environ=environ).get_response(
        exc_class(explanation=message, headers=headers or {})
    )
    return Response(
        page.body,
        status=page.status_int,
        headers=[(k, v) for k, v in page.headerlist if k.lower() != "content-length"],
    )


# --- request bodies


class Base64Reader:
    """A file-like view of a base64 body (``Content-Transfer-Encoding: base64``) that
    decodes as it is read, block by block: line breaks and spaces are skipped, anything
    else outside the base64 alphabet is a 400."""

    WHITESPACE = b" \t\r\n\v\f"

    def __init__(self, stream):
        self.stream = stream
        self.pending = b""  # encoded bytes not yet decoded (fewer than 4)
        self.ended = False  # padding seen: nothing may follow

    def read(self, size: int = -1) -> bytes:
        want = 1 << 20 if size is None or size < 0 else size
        while True:
            raw = self.stream.read(max(4, want * 4 // 3 + 4))
            if not raw:
                if self.pending:
                    raise BadRequest("The base64 request body is truncated.")
                return b""
            encoded = self.pending + raw.translate(None, self.WHITESPACE)
            usable = len(encoded) - len(encoded) % 4
            self.pending = encoded[usable:]
            if not usable:
                continue
            if self.ended:
                raise BadRequest("The base64 request body goes on after its padding.")
            chunk = encoded[:usable]
            if b"=" in chunk[:-2] or (b"=" in chunk[-2:-1] and chunk[-1:] != b"="):
                raise BadRequest("The request body is not valid base64.")
            self.ended = chunk.endswith(b"=")
            try:
                return base64.b64decode(chunk, validate=True)
            except binascii.Error:
                raise BadRequest("The request body is not valid base64.") from None


class ChecksumReader:
    """Reads ``stream`` one block ahead and checks the MD5 of the whole against
    ``expected`` before it hands over the last block, so a mismatch (400, as Glance's
    ``x-image-meta-checksum``) reaches the store as a broken upload, never as data."""

    def __init__(self, stream, expected: str):
        self.stream = stream
        self.expected = expected.lower()
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.ahead: bytes | None = None

    def read(self, size: int = -1) -> bytes:
        if self.ahead is None:
            self.ahead = self.stream.read(size)
            self.md5.update(self.ahead)
        block, self.ahead = self.ahead, self.stream.read(size) if self.ahead else b""
        self.md5.update(self.ahead)
        if not self.ahead and self.md5.hexdigest() != self.expected:
            raise BadRequest(
                f"Supplied checksum ({self.expected}) and checksum generated from uploaded "
                f"image ({self.md5.hexdigest()}) did not match."
            )
        return block
