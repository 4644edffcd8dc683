"""The legacy Image API v1 (Glance Queens' ``glance/api/v1``): image metadata in
``x-image-meta-*`` headers, image data in the request and response bodies, for the old
scripts and tools that still speak it. Served when ``[DEFAULT] enable_v1_api`` is on.

A thin translation: each request becomes the same registry and store calls as v2's
(the same policies, quotas, format checks, size cap and status machine), and the
answers are written in v1's shapes (services/api/v1_meta.py). Where v1 and v2 differ,
v2's rules win: a failed upload leaves the image ``queued`` (v1: ``killed``), members
carry no ``can_share``, formats are frozen once the image has data."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, jsonify, request
from oslo_utils import strutils
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException

from services.api import image_data
from services.api.errors import status_for
from services.api.gateway import call, conf, json_body, path_text
from services.api.images import sized_location
from services.api.list_params import _bool, _check_time, _int, _limit, _single, _sort
from services.api.v1_meta import (
    Base64Reader,
    ChecksumReader,
    brief_meta,
    error_response,
    image_meta,
    is_bookkeeping,
    meta_from_headers,
    meta_headers,
)
from services.common.contracts import Filter, ImageChange, ListQuery, NewImage
from services.common.errors import (
    BadRequest,
    Conflict,
    Duplicate,
    Forbidden,
    NotFound,
    TesseraError,
)
from services.common.image_attributes import is_attribute

log = logging.getLogger(__name__)

bp = Blueprint("v1", __name__)

# v1 headers that name a v2 attribute of the same name
SAME_IN_V2 = (
    "name",
    "disk_format",
    "container_format",
    "min_ram",
    "min_disk",
    "owner",
    "protected",
)
PLAIN_ENCODINGS = ("", "binary", "8bit", "7bit")
COPY_FROM_REFUSED = (
    "Copying image data from an external source (x-glance-api-copy-from) is not "
    "supported by this image service; send the data in the request body instead."
)


# --- errors in v1's style


@bp.errorhandler(TesseraError)
def _typed(exc: TesseraError):
    return error_response(status_for(exc), exc.message)


@bp.errorhandler(HTTPException)
def _http(exc: HTTPException):
    headers = (
        {"Allow": ", ".join(exc.valid_methods)} if getattr(exc, "valid_methods", None) else None
    )
    return error_response(exc.code or 500, exc.description or exc.name, headers)


@bp.errorhandler(Exception)
def _unexpected(exc: Exception):
    log.exception("unexpected error")
    return error_response(
        500, "The image service failed to complete the request; the error has been logged."
    )


# --- lists


def _list_query(args: MultiDict) -> ListQuery:
    """v1's filters (glance/api/v1/__init__.py SUPPORTED_FILTERS, ``property-<key>``)
    and paging as the registry's list query. Like Glance v1, shares in every member
    status are listed; ``is_public`` picks public or non-public images (``none``: all)."""
    filters, properties, visibility = [], {}, None
    for name in args:
        raw = _single(args, name)
        if name in ("name", "status", "container_format", "disk_format"):
            filters.append(Filter(name, "eq", raw))
        elif name in ("size_min", "size_max"):
            filters.append(Filter("size", "gte" if name == "size_min" else "lte", _int(name, raw)))
        elif name in ("min_ram", "min_disk"):
            filters.append(Filter(name, "eq", _int(name, raw)))
        elif name == "protected":
            filters.append(Filter("protected", "eq", _bool(name, raw)))
        elif name == "is_public":
            if raw.strip().lower() == "none":
                visibility = "all"
            elif _bool(name, raw):
                visibility = "public"
            else:
                filters.append(Filter("visibility", "in", ["private", "shared", "community"]))
        elif name == "changes-since":
            filters.append(Filter("updated_at", "gte", _check_time(name, raw)))
        elif name.startswith("property-") and len(name) > len("property-"):
            properties[name[len("property-") :]] = raw
    settings = conf()
    sorting = MultiDict(
        [(k, v) for k, v in args.items(multi=True) if k in ("sort_key", "sort_dir")]
    )
    query = ListQuery(
        limit=_limit(_single(args, "limit"), settings.limit_param_default, settings.api_limit_max),
        sort=_sort(sorting),
        marker=_single(args, "marker"),
        visibility=visibility,
        member_status="all",
        filters=filters,
        properties=properties,
    )
    query.check()
    return query


def _list() -> list[dict]:
    return call("registry", "list_images", _list_query(request.args).to_wire())["images"]


@bp.get("/v1/images")
def index():
    return jsonify({"images": [brief_meta(r) for r in _list()]})


@bp.route("/v1/images/detail", methods=["GET", "HEAD"])
def detail():
    if request.method == "HEAD":
        return error_response(
            405,
            "This operation is currently not permitted on Glance images details.",
            {"Allow": "GET"},
        )
    return jsonify({"images": [image_meta(r) for r in _list()]})


# --- one image


@bp.route("/v1/images/<image_id>", methods=["GET", "HEAD"])
def show(image_id):
    """HEAD: the metadata as headers. GET: the same headers and the data, through v2's
    download path (and so the API host's image cache)."""
    if request.method == "HEAD":
        record = call("registry", "get_image", image_id)
        return Response(b"", 200, headers=meta_headers(image_meta(record)))
    record = call("registry", "get_image", image_id, "download_image")
    if record["status"] == "deactivated":
        raise Forbidden(f"Image {image_id} is deactivated")
    if record["status"] != "active":
        raise NotFound(f"Image {image_id} is not active")
    headers = meta_headers(image_meta(record))
    if not record["size"]:
        return Response(b"", 200, headers=headers, content_type="application/octet-stream")
    # v1 always sends the whole image: a Range header is not v1's to honour
    for key in ("HTTP_RANGE", "HTTP_CONTENT_RANGE"):
        request.environ.pop(key, None)
    response = image_data.send_image_data(image_id, record)
    response.headers.update(headers)
    return response


def _has_body() -> bool:
    """Whether the request carries image data (Glance's ``has_body``)."""
    return "Transfer-Encoding" in request.headers or (request.content_length or 0) > 0


def _check_request(meta: dict, has_data: bool) -> None:
    """What v1 refuses before touching the image: a copy from elsewhere, two sources of
    data, data that is not octet-stream, a store other than this deployment's."""
    if request.headers.get("x-glance-api-copy-from") or meta.get("copy_from"):
        raise BadRequest(COPY_FROM_REFUSED)
    if has_data:
        if meta.get("location"):
            raise BadRequest("It's invalid to provide multiple image sources.")
        if request.mimetype != "application/octet-stream":
            raise BadRequest("Content-Type must be application/octet-stream")
    store = meta.get("store")
    default_store = conf().glance_store.default_store
    if store is not None and store != default_store:
        raise BadRequest(f"Store for scheme {store} not found")


def _attributes(meta: dict, current: dict | None = None) -> dict:
    """The v2 attributes a v1 request sets. ``is_public`` maps to ``visibility`` as
    Glance mapped it: true is ``public``, false ``shared`` (so members can be added, as
    v1 allowed) unless the image is already not public."""
    attributes = {k: meta[k] for k in SAME_IN_V2 if k in meta}
    if "is_public" in meta:
        if meta["is_public"]:
            attributes["visibility"] = "public"
        elif current is None or current["visibility"] == "public":
            attributes["visibility"] = "shared"
    return attributes


def _location_change(url: str) -> ImageChange:
    """Adding ``x-image-meta-location`` as v2 adds a location (same rules and policy)."""
    return sized_location(ImageChange("add", ("locations", "-"), {"url": url, "metadata": {}}))


def _data_source(meta: dict) -> tuple[int | None, object]:
    """(declared size, stream) of the request's image data, checked before the image is
    touched: decoded as it is read when sent base64 encoded, its MD5 checked against
    ``x-image-meta-checksum`` when given (stream None: the plain request body)."""
    declared = meta.get("size")
    encoding = (request.headers.get("Content-Transfer-Encoding") or "").strip().lower()
    stream = None
    if encoding == "base64":
        # the decoded size is unknown until the end: the store checks a declared one
        size, stream = declared, Base64Reader(request.stream)
    elif encoding in PLAIN_ENCODINGS:
        size = request.content_length
        if declared is not None and size is not None and declared != size:
            raise BadRequest(
                f"x-image-meta-size ({declared}) does not match the size of the request "
                f"body ({size})."
            )
        size = size if size is not None else declared
    else:
        raise BadRequest(f"Unsupported Content-Transfer-Encoding: {encoding}")
    if meta.get("checksum"):
        stream = ChecksumReader(stream or request.stream, meta["checksum"])
    return size, stream


def _upload(image_id: str, source: tuple[int | None, object]) -> dict:
    """The data through v2's upload pipeline; the image's record afterwards."""
    image_data.store_image_data(image_id, *source)
    return call("registry", "get_image", image_id)


def _image_response(record: dict, status: int) -> Response:
    meta = image_meta(record)
    response = jsonify({"image": meta})
    response.status_code = status
    if meta["checksum"]:
        response.headers["ETag"] = meta["checksum"]
    return response


@bp.post("/v1/images")
def create():
    meta = meta_from_headers(request.headers)
    has_data = _has_body()
    _check_request(meta, has_data)
    source = _data_source(meta) if has_data else None
    attributes = _attributes(meta)
    if meta.get("id") is not None:
        attributes["id"] = meta["id"]
    new = NewImage(attributes, meta["properties"], [])
    new.check(current_app.extensions["tessera.image_validator"])
    location = _location_change(meta["location"]) if meta.get("location") else None
    record = call("registry", "create_image", new.to_wire())
    if location is not None:
        record = call("registry", "update_image", record["id"], [location.to_wire()])
    elif source is not None:
        record = _upload(record["id"], source)
    response = _image_response(record, 201)
    response.headers["Location"] = f"/v1/images/{record['id']}"
    return response


def _changes(meta: dict, current: dict, purge: bool) -> list[ImageChange]:
    """The v2 changes of a v1 update: attributes and properties that differ, and (as v1
    does unless ``x-glance-registry-purge-props: false`` or data is sent) the removal of
    the properties the request does not name."""
    changes = [
        ImageChange("replace", (name,), value)
        for name, value in _attributes(meta, current).items()
        if current.get(name) != value
    ]
    have, wanted = current["properties"], meta["properties"]
    for name, value in wanted.items():
        if is_attribute(name):
            raise BadRequest(f"'{name}' is an attribute, not an extra property.")
        if have.get(name) != value:
            changes.append(ImageChange("replace" if name in have else "add", (name,), value))
    if purge:
        changes += [
            ImageChange("remove", (name,))
            for name in have
            if name not in wanted and not is_bookkeeping(name)
        ]
    return changes


@bp.put("/v1/images/<image_id>")
def update(image_id):
    meta = meta_from_headers(request.headers)
    has_data = _has_body()
    _check_request(meta, has_data)
    source = _data_source(meta) if has_data else None
    current = call("registry", "get_image", image_id)
    for key in ("id", "status"):
        if meta.get(key) is not None and meta[key] != current[key]:
            raise Forbidden(f"Forbidden to modify '{key}' of image.")
    if current["status"] == "active":
        for key in ("size", "checksum"):
            if meta.get(key) is not None and meta[key] != current[key]:
                raise Forbidden(f"Forbidden to modify '{key}' of active image.")
    if has_data and current["status"] != "queued":
        raise Conflict("Cannot upload to an unqueued image")
    if meta.get("location") and current["status"] != "queued":
        raise BadRequest("Attempted to update Location field for an image not in queued status.")
    purge_header = request.headers.get("x-glance-registry-purge-props", "true")
    purge = strutils.bool_from_string(purge_header) and not has_data
    changes = _changes(meta, current, purge)
    if meta.get("location"):
        changes.append(_location_change(meta["location"]))
    record = current
    if changes:
        record = call("registry", "update_image", image_id, [c.to_wire() for c in changes])
    if source is not None:
        record = _upload(image_id, source)
    return _image_response(record, 200)


@bp.delete("/v1/images/<image_id>")
def delete(image_id):
    call("registry", "delete_image", image_id)
    return Response(b"", 200)  # Queens answered 200 with an empty body (api-ref: 204)


# --- members


def _membership(member: dict) -> dict:
    return {"member_id": member["member_id"], "can_share": False}


@bp.get("/v1/images/<image_id>/members")
def list_members(image_id):
    return jsonify(
        {"members": [_membership(m) for m in call("registry", "list_members", image_id)]}
    )


@bp.put("/v1/images/<image_id>/members")
def replace_members(image_id):
    body = json_body()
    memberships = body.get("memberships") if isinstance(body, dict) else None
    if not isinstance(memberships, list) or not all(
        isinstance(m, dict) and isinstance(m.get("member_id"), str) and m["member_id"]
        for m in memberships
    ):
        raise BadRequest(
            'Invalid membership association: the body must be {"memberships": '
            '[{"member_id": "<project>", "can_share": false}, ...]}.'
        )
    wanted = list(dict.fromkeys(m["member_id"] for m in memberships))
    current = [m["member_id"] for m in call("registry", "list_members", image_id)]
    for member in current:
        if member not in wanted:
            call("registry", "remove_member", image_id, member)
    for member in wanted:
        if member not in current:
            call("registry", "add_member", image_id, member)
    return "", 204


@bp.put("/v1/images/<image_id>/members/<member_id>")
def add_member(image_id, member_id):
    """Add a member, or keep an existing one (``can_share`` is not kept)."""
    member_id = path_text(member_id, "member id")
    try:
        call("registry", "add_member", image_id, member_id)
    except Duplicate:
        pass
    return "", 204


@bp.delete("/v1/images/<image_id>/members/<member_id>")
def remove_member(image_id, member_id):
    member_id = path_text(member_id, "member id")
    call("registry", "remove_member", image_id, member_id)
    return "", 204


@bp.get("/v1/shared-images/<member_id>")
def shared_images(member_id):
    member_id = path_text(member_id, "member id")
    shares = call("registry", "shared_with", member_id)
    return jsonify(
        {"shared_images": [{"image_id": m["image_id"], "can_share": False} for m in shares]}
    )
