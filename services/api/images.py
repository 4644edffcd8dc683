"""``/v2/images``: create, list, show, update, delete, tags."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import urlencode

from flask import Blueprint, current_app, jsonify, request

from services.api.gateway import call, conf, json_body, path_text
from services.api.imports import import_methods
from services.api.list_params import parse_list_query
from services.api.patch import parse_changes
from services.api.views import image_href, image_view
from services.common.config import enabled_backends
from services.common.contracts import ImageChange, NewImage
from services.common.errors import BadRequest, Forbidden
from services.common.image_attributes import check_writable
from services.common.url_filter import UrlFilter

bp = Blueprint("images", __name__)


def _validator():
    return current_app.extensions["tessera.image_validator"]


def _no_content():
    return "", 204


@bp.post("/v2/images")
def create_image():
    body = json_body()
    if not isinstance(body, dict):
        raise BadRequest("Request body must be a JSON object.")
    for key in body:
        check_writable(key, creating=True)
    new = NewImage.from_body(body, _validator())
    record = call("registry", "create_image", new.to_wire())
    response = jsonify(image_view(record, conf()))
    response.status_code = 201
    response.headers["Location"] = image_href(record["id"])
    methods = import_methods(conf())
    if methods:
        response.headers["OpenStack-image-import-methods"] = ",".join(methods)
    if stores := enabled_backends(conf()):
        response.headers["OpenStack-image-store-ids"] = ",".join(stores)
    return response


@bp.get("/v2/images")
def list_images():
    settings = conf()
    query = parse_list_query(request.args, settings)
    result = call("registry", "list_images", query.to_wire())
    params = [(k, v) for k, v in request.args.items(multi=True) if k != "marker"]
    body = {
        "images": [image_view(r, settings) for r in result["images"]],
        "first": "/v2/images" + (f"?{urlencode(params)}" if params else ""),
        "schema": "/v2/schemas/images",
    }
    if result["more"] and result["images"]:
        body["next"] = "/v2/images?" + urlencode(params + [("marker", result["images"][-1]["id"])])
    return jsonify(body)


@bp.get("/v2/images/<image_id>")
def show_image(image_id):
    return jsonify(image_view(call("registry", "get_image", image_id), conf()))


@bp.patch("/v2/images/<image_id>")
def update_image(image_id):
    changes = parse_changes((request.mimetype or "").lower(), json_body, _validator())
    wire = [sized_location(change).to_wire() for change in changes]
    record = call("registry", "update_image", image_id, wire)
    return jsonify(image_view(record, conf()))


def sized_location(change: ImageChange) -> ImageChange:
    """A change adding a location, allowed only where locations are shown, with the size
    the store measures at that URL (any other change as it is)."""
    if change.name != "locations" or change.op != "add":
        return change
    if not conf().show_multiple_locations:
        raise Forbidden("It's not allowed to add locations if locations are invisible.")
    UrlFilter.from_config(conf()).check(change.value["url"])  # 400, as Glance 33
    return replace(change, size=call("store", "location_size", change.value["url"]))


@bp.delete("/v2/images/<image_id>")
def delete_image(image_id):
    call("registry", "delete_image", image_id)
    return _no_content()


@bp.put("/v2/images/<image_id>/tags/<path:tag>")
def add_tag(image_id, tag):
    tag = path_text(tag, "tag")
    if len(tag) > 255:
        raise BadRequest(f"Tag is longer than 255 characters: {tag[:32]}...")
    call("registry", "add_tag", image_id, tag)
    return _no_content()


@bp.delete("/v2/images/<image_id>/tags/<path:tag>")
def remove_tag(image_id, tag):
    tag = path_text(tag, "tag")
    call("registry", "remove_tag", image_id, tag)
    return _no_content()


@bp.post("/v2/images/<image_id>/actions/deactivate")
def deactivate(image_id):
    call("registry", "set_active", image_id, False)
    return _no_content()


@bp.post("/v2/images/<image_id>/actions/reactivate")
def reactivate(image_id):
    call("registry", "set_active", image_id, True)
    return _no_content()


@bp.get("/v2/info/usage")
def usage():
    return jsonify({"usage": call("registry", "usage")})
