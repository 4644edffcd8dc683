"""Interoperable image import: ``GET /v2/info/import``, ``PUT /v2/images/{id}/stage``,
``POST /v2/images/{id}/import`` and ``GET /v2/images/{id}/tasks``.

Staging is an upload into the staging area (services/api/image_data.py relays it to
the store replica ``open_stage`` answers); an import is a task the registry creates and
a store replica runs (services/store/imports.py)."""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify

from services.api.gateway import call, conf, json_body
from services.api.image_data import relay_upload
from services.api.stores import import_stores, multi_store
from services.common.config import enabled_backends
from services.common.errors import BadRequest, NotFound
from services.common.url_filter import UrlFilter

log = logging.getLogger(__name__)

bp = Blueprint("imports", __name__)

#: The methods Tessera runs, of Glance's glance-direct, web-download, copy-image and
#: glance-download.
IMPLEMENTED_IMPORT_METHODS = ("glance-direct", "web-download")


def import_methods(settings) -> list[str]:
    """The configured methods that Tessera runs, in the configured order (copy-image
    with multiple stores only)."""
    implemented = IMPLEMENTED_IMPORT_METHODS + (
        ("copy-image",) if enabled_backends(settings) else ()
    )
    return [m for m in settings.enabled_import_methods if m in implemented]


@bp.record_once
def _warn_unimplemented(state) -> None:
    settings = state.app.extensions["tessera.conf"]
    offered = import_methods(settings)
    for method in settings.enabled_import_methods:
        if method not in offered:
            log.warning(
                "[DEFAULT] enabled_import_methods lists %s, which Tessera does not "
                "implement: it is not offered (it runs %s; copy-image with "
                "enabled_backends)",
                method,
                ", ".join(IMPLEMENTED_IMPORT_METHODS),
            )


@bp.get("/v2/info/import")
def info_import():
    return jsonify(
        {
            "import-methods": {
                "description": "Import methods available.",
                "type": "array",
                "value": import_methods(conf()),
            }
        }
    )


@bp.put("/v2/images/<image_id>/stage")
def stage(image_id):
    if "glance-direct" not in import_methods(conf()):
        raise NotFound("'glance-direct' method is not available at this site.")
    return relay_upload(image_id, "open_stage")


def _import_request(body) -> dict:
    """Glance's checks of an import body (400s, in Glance's words)."""
    if not isinstance(body, dict) or not isinstance(body.get("method"), dict):
        raise BadRequest("Import request requires a 'method' field.")
    method = body["method"]
    if "name" not in method:
        raise BadRequest("Import request requires a 'name' field.")
    if method["name"] not in import_methods(conf()):
        raise BadRequest(f"Unknown import method name '{method['name']}'.")
    for key, default in (("all_stores_must_succeed", True), ("all_stores", False)):
        if not isinstance(body.get(key, default), bool):
            raise BadRequest(f"'{key}' must be boolean value only")
    if not body.get("all_stores_must_succeed", True) and not multi_store():
        raise BadRequest("All_stores_must_succeed can only be set with enabled_backends")
    request = {"method": {"name": method["name"]}}
    if method["name"] == "web-download":
        UrlFilter.from_config(conf()).check(method.get("uri"))  # 400 when refused
        request["method"]["uri"] = method["uri"]
    for key in ("stores", "all_stores", "all_stores_must_succeed"):
        if key in body:
            request[key] = body[key]
    return request


@bp.post("/v2/images/<image_id>/import")
def import_image(image_id):
    body = json_body()
    request = _import_request(body)
    targets = import_stores(body)  # multiple stores: 400 for an unknown one
    if request["method"]["name"] == "copy-image" and body.get("all_stores"):
        present = {
            loc["metadata"].get("store")
            for loc in call("registry", "get_image", image_id)["locations"]
        }
        targets = [t for t in targets if t not in present]
        if not targets:  # as Glance: nothing to copy
            return "", 202
    # several stores: the store replica writes to each in turn
    call(
        "registry", "begin_import", image_id, request, targets[0] if len(targets) == 1 else targets
    )
    return "", 202


@bp.get("/v2/images/<image_id>/tasks")
def image_tasks(image_id):
    return jsonify({"tasks": call("registry", "image_tasks", image_id)})
